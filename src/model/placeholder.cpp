// placeholder so the layer target has a source
