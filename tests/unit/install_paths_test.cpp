// SPDX-License-Identifier: Apache-2.0
// The default configuration file of an installed program follows the prefix it is installed in, by
// GNUInstallDirs' SYSCONFDIR rules (hubprobe/install_paths.h, docs/operations.md "Installing").
#include "hubprobe/install_paths.h"

#include <gtest/gtest.h>

#include "hubprobe_version.h"

namespace hubprobe {
namespace {

constexpr std::string_view kFallback = "/configured/etc/hubprobe/hubprobe.toml";

TEST(SysconfdirOf, RootAndUsrUseEtc) {
  EXPECT_EQ(sysconfdir_of("/"), "/etc");
  EXPECT_EQ(sysconfdir_of(""), "/etc");
  EXPECT_EQ(sysconfdir_of("/usr"), "/etc");
  EXPECT_EQ(sysconfdir_of("/usr/"), "/etc");
}

TEST(SysconfdirOf, OptNameUsesEtcOptName) {
  EXPECT_EQ(sysconfdir_of("/opt/hubprobe"), "/etc/opt/hubprobe");
  EXPECT_EQ(sysconfdir_of("/opt/hubprobe/"), "/etc/opt/hubprobe");
  EXPECT_EQ(sysconfdir_of("/opt/vendor/hubprobe"), "/etc/opt/vendor/hubprobe");
  EXPECT_EQ(sysconfdir_of("/opt/homebrew/hubprobe"), "/opt/homebrew/hubprobe/etc");  // as GNUInstallDirs
}

TEST(SysconfdirOf, AnyOtherPrefixUsesPrefixEtc) {
  EXPECT_EQ(sysconfdir_of("/usr/local"), "/usr/local/etc");
  EXPECT_EQ(sysconfdir_of("/tmp/x"), "/tmp/x/etc");
  EXPECT_EQ(sysconfdir_of("/tmp/x/"), "/tmp/x/etc");
  EXPECT_EQ(sysconfdir_of("/usrx"), "/usrx/etc");
  EXPECT_EQ(sysconfdir_of("/optional"), "/optional/etc");
  EXPECT_EQ(sysconfdir_of("/home/me/opt/x"), "/home/me/opt/x/etc");
}

TEST(DefaultConfigFor, BinAndSbinNameTheirPrefix) {
  EXPECT_EQ(default_config_for("/usr/sbin/hubprobed", kFallback), "/etc/hubprobe/hubprobe.toml");
  EXPECT_EQ(default_config_for("/usr/bin/hubprobe", kFallback), "/etc/hubprobe/hubprobe.toml");
  EXPECT_EQ(default_config_for("/sbin/hubprobed", kFallback), "/etc/hubprobe/hubprobe.toml");
  EXPECT_EQ(default_config_for("/usr/local/sbin/hubprobed", kFallback), "/usr/local/etc/hubprobe/hubprobe.toml");
  EXPECT_EQ(default_config_for("/opt/hubprobe/bin/hubprobe", kFallback), "/etc/opt/hubprobe/hubprobe/hubprobe.toml");
  EXPECT_EQ(default_config_for("/tmp/x/sbin/hubprobed", kFallback), "/tmp/x/etc/hubprobe/hubprobe.toml");
}

TEST(DefaultConfigFor, ABinaryReplacedOnDiskKeepsItsPrefix) {
  // /proc/self/exe of a program whose file an upgrade replaced.
  EXPECT_EQ(default_config_for("/usr/sbin/hubprobed (deleted)", kFallback), "/etc/hubprobe/hubprobe.toml");
}

TEST(DefaultConfigFor, ElsewhereIsTheFallback) {
  EXPECT_EQ(default_config_for("/work/hubprobe/build/agent/hubprobed", kFallback), kFallback);
  EXPECT_EQ(default_config_for("/usr/lib/hubprobe/hubprobed", kFallback), kFallback);
  EXPECT_EQ(default_config_for("/tmp/binaries/hubprobed", kFallback), kFallback);  // "binaries" is not "bin"
  EXPECT_EQ(default_config_for("/hubprobed", kFallback), kFallback);
  EXPECT_EQ(default_config_for("sbin/hubprobed", kFallback), kFallback);  // not an absolute path
  EXPECT_EQ(default_config_for("", kFallback), kFallback);
}

TEST(DefaultConfigFile, RunFromTheBuildTreeIsTheConfiguredDefault) {
  // This test program lies in the build tree (tests/), not in a bin or sbin folder.
  EXPECT_EQ(default_config_file(), HUBPROBE_DEFAULT_CONFIG);
}

}  // namespace
}  // namespace hubprobe
