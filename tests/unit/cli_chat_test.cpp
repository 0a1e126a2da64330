// The chat as a person uses it: the real binary in a terminal (tmux), turns typed with
// send-keys, the screen read back with capture-pane.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

#include "cli_util.h"

namespace kl::test {
namespace {

class Tmux {
 public:
  explicit Tmux(const std::string& command) : sock_("kltest" + std::to_string(::getpid())) {
    ok_ = std::system(("tmux -L " + sock_ + " new-session -d -s chat -x 220 -y 60 '" + command + "'").c_str()) == 0;
  }
  ~Tmux() { std::system(("tmux -L " + sock_ + " kill-server 2>/dev/null").c_str()); }
  bool ok() const { return ok_; }
  void type(const std::string& text) {
    std::system(("tmux -L " + sock_ + " send-keys -t chat -l '" + text + "'").c_str());
    std::system(("tmux -L " + sock_ + " send-keys -t chat Enter").c_str());
  }
  std::string screen() {
    const std::string f = (std::filesystem::temp_directory_path() / (sock_ + ".screen")).string();
    std::system(("tmux -L " + sock_ + " capture-pane -p -J -S - -t chat > " + f + " 2>/dev/null").c_str());
    std::ifstream in(f);
    std::string s((std::istreambuf_iterator<char>(in)), {});
    std::filesystem::remove(f);
    return s;
  }
  // Waits until `needle` appears `times` times on the screen (60 s at most).
  bool wait_for(const std::string& needle, int times = 1) {
    for (int i = 0; i < 600; i++) {
      std::string s = screen();
      int n = 0;
      for (size_t p = s.find(needle); p != std::string::npos; p = s.find(needle, p + 1)) n++;
      if (n >= times) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

 private:
  std::string sock_;
  bool ok_ = false;
};

// The reply lines: the text between each "> user line" and its "[... processed ...]" summary.
std::vector<std::string> replies(const std::string& screen, const std::string& user_line) {
  std::vector<std::string> out;
  const std::string head = "> " + user_line + "\n";
  for (size_t p = screen.find(head); p != std::string::npos; p = screen.find(head, p + 1)) {
    const size_t b = p + head.size();
    const size_t e = screen.find(" prompt tokens processed", b);
    if (e == std::string::npos) break;
    const size_t bracket = screen.rfind("\n[", e);
    if (bracket == std::string::npos || bracket < b) continue;
    out.push_back(screen.substr(b, bracket - b));
  }
  return out;
}

TEST(ChatTerminal, TurnsSaveResetLoad) {
  if (std::system("command -v tmux >/dev/null 2>&1") != 0) GTEST_SKIP() << "tmux is not installed";
  const std::string file = (std::filesystem::temp_directory_path() / ("kl_chat_" + std::to_string(::getpid()) + ".kls")).string();
  Tmux t(std::string(KL_BINARY) + " chat --seed 7 --temperature 0 -n 6 -t 1 2>/dev/null");
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE(t.wait_for("/exit")) << t.screen();  // the help is shown
  t.type("Hello there");
  ASSERT_TRUE(t.wait_for("prompt tokens processed this turn", 1)) << t.screen();
  t.type("/save " + file);
  ASSERT_TRUE(t.wait_for("[saved 16 tokens")) << t.screen();
  t.type("Second turn");
  ASSERT_TRUE(t.wait_for("prompt tokens processed this turn", 2)) << t.screen();
  t.type("/reset");
  ASSERT_TRUE(t.wait_for("[new conversation]")) << t.screen();
  t.type("/load " + file);
  ASSERT_TRUE(t.wait_for("[loaded 16 tokens")) << t.screen();
  t.type("Second turn");
  ASSERT_TRUE(t.wait_for("prompt tokens processed this turn", 3)) << t.screen();
  // Read before /exit: once the chat has exited, its tmux session (and screen) may be gone.
  const std::string s = t.screen();
  t.type("/exit");

  // A turn costs only its new tokens: 9 (user header + text + generation prompt), not the history.
  EXPECT_NE(s.find("[9 prompt tokens processed this turn | 6 generated"), std::string::npos) << s;
  EXPECT_NE(s.find("context 32 tokens"), std::string::npos) << s;
  // After /load the conversation continues exactly as it did in the session that saved it.
  std::vector<std::string> r = replies(s, "Second turn");
  ASSERT_EQ(r.size(), 2u) << s;
  EXPECT_EQ(r[0], r[1]);
  EXPECT_FALSE(r[0].empty());
  std::filesystem::remove(file);
}

TEST(ChatTerminal, BadCommandsAreReportedAndTheChatGoesOn) {
  if (std::system("command -v tmux >/dev/null 2>&1") != 0) GTEST_SKIP() << "tmux is not installed";
  Tmux t(std::string(KL_BINARY) + " chat --seed 1 --temperature 0 -n 3 -t 1 2>/dev/null");
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE(t.wait_for("/exit"));
  t.type("/load /nonexistent/file.kls");
  ASSERT_TRUE(t.wait_for("[error: /nonexistent/file.kls")) << t.screen();
  t.type("/frob");
  ASSERT_TRUE(t.wait_for("[unknown command /frob")) << t.screen();
  t.type("hi");
  ASSERT_TRUE(t.wait_for("prompt tokens processed this turn")) << t.screen();
}

}  // namespace
}  // namespace kl::test
