// SPDX-License-Identifier: Apache-2.0
// The generation file in a real folder: durability, reopen, corruption, unusable folders.
#include "hubprobe/generation_store.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>

#include "../support/preference_fixtures.h"

namespace hubprobe {
namespace {

TEST(GenerationStore, FreshFolderCountsFromOneAndWritesDurably) {
  TempDir tmp;
  const std::string dir = tmp.path() + "/state/hubprobe";  // neither exists yet
  auto store = GenerationStore::open(dir);
  ASSERT_TRUE(store) << store.error().message;
  EXPECT_EQ(store->current(), 0u);
  EXPECT_EQ(store->path(), dir + "/generation");
  struct stat info {};
  ASSERT_EQ(::stat(dir.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 07777, 0750u);
  for (uint64_t expected : {1u, 2u, 3u}) {
    const auto next = store->next();
    ASSERT_TRUE(next) << next.error().message;
    EXPECT_EQ(*next, expected);
    EXPECT_EQ(store->current(), expected);
  }
  EXPECT_EQ(read_file(dir + "/generation"), "3\n");
  EXPECT_FALSE(std::filesystem::exists(dir + "/generation.tmp"));
}

TEST(GenerationStore, ReopenContinuesWhereItStopped) {
  TempDir tmp;
  {
    auto store = GenerationStore::open(tmp.path());
    ASSERT_TRUE(store) << store.error().message;
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(store->next());
  }
  auto again = GenerationStore::open(tmp.path() + "/");
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->current(), 3u);
  const auto next = again->next();
  ASSERT_TRUE(next) << next.error().message;
  EXPECT_EQ(*next, 4u);
  EXPECT_EQ(read_file(tmp.path() + "/generation"), "4\n");

  write_file(tmp.path() + "/generation", "18446744073709551614\n");  // the largest value but one
  auto high = GenerationStore::open(tmp.path());
  ASSERT_TRUE(high) << high.error().message;
  ASSERT_TRUE(high->next());
  const auto overflow = high->next();
  ASSERT_FALSE(overflow);
  EXPECT_NE(overflow.error().message.find("cannot grow"), std::string::npos) << overflow.error().message;
}

TEST(GenerationStore, CorruptFileIsAnErrorNamingTheFileNeverAReset) {
  TempDir tmp;
  const std::string file = tmp.path() + "/generation";
  for (const char* text : {"", "\n", "12abc\n", "-1\n", " 7\n", "7\n\n", "99999999999999999999\n"}) {
    write_file(file, text);
    const auto store = GenerationStore::open(tmp.path());
    ASSERT_FALSE(store) << "accepted " << nlohmann::json(text).dump();
    EXPECT_NE(store.error().message.find("corrupt generation file " + file), std::string::npos)
        << store.error().message;
    EXPECT_EQ(read_file(file), text) << "the file must be left for the operator to look at";
  }
}

TEST(GenerationStore, UnusableStateDirectoryIsAnError) {
  TempDir tmp;
  // Root ignores permissions, so make the path itself impossible: a folder under a regular file.
  write_file(tmp.path() + "/file", "x");
  const auto under_file = GenerationStore::open(tmp.path() + "/file/state");
  ASSERT_FALSE(under_file);
  EXPECT_EQ(under_file.error().code, ENOTDIR);
  EXPECT_NE(under_file.error().message.find(tmp.path() + "/file"), std::string::npos) << under_file.error().message;

  // A generation "file" that is a folder cannot be read.
  std::filesystem::create_directory(tmp.path() + "/generation");
  const auto folder = GenerationStore::open(tmp.path());
  ASSERT_FALSE(folder);
  EXPECT_NE(folder.error().message.find(tmp.path() + "/generation"), std::string::npos) << folder.error().message;
}

TEST(GenerationStore, FailedWriteHandsOutNoGeneration) {
  TempDir tmp;
  auto store = GenerationStore::open(tmp.path());
  ASSERT_TRUE(store) << store.error().message;
  ASSERT_TRUE(store->next());
  // A folder where the temporary file goes: open(O_WRONLY) fails with EISDIR, even for root.
  std::filesystem::create_directory(tmp.path() + "/generation.tmp");
  const auto failed = store->next();
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code, EISDIR);
  EXPECT_NE(failed.error().message.find(tmp.path() + "/generation.tmp"), std::string::npos) << failed.error().message;
  EXPECT_EQ(store->current(), 1u);
  EXPECT_EQ(read_file(tmp.path() + "/generation"), "1\n");
  std::filesystem::remove(tmp.path() + "/generation.tmp");
  const auto next = store->next();
  ASSERT_TRUE(next) << next.error().message;
  EXPECT_EQ(*next, 2u);
}

}  // namespace
}  // namespace hubprobe
