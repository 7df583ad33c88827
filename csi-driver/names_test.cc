// Tests of derived names: deterministic, valid object names, distinct for distinct CSI names.
#include "csi-driver/names.h"

#include <gtest/gtest.h>

#include <set>

namespace vios::csi {
namespace {

// IsDnsLabel checks ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ (std::regex trips GCC 12 warnings).
bool IsDnsLabel(const std::string& s) {
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (s.empty() || !alnum(s.front()) || !alnum(s.back())) return false;
  for (char c : s) {
    if (!alnum(c) && c != '-') return false;
  }
  return true;
}

TEST(NamesTest, VolumeObjectNameIsDeterministicAndValid) {
  std::string long_name(128, 'A');
  for (std::string name : {std::string("pvc-1234"), std::string("Sanity Volume_1"), long_name,
                           std::string("---"), std::string("\xc3\xa9t\xc3\xa9")}) {
    std::string id = VolumeObjectName(name);
    EXPECT_EQ(id, VolumeObjectName(name));
    EXPECT_LE(id.size(), 53u) << id;
    EXPECT_TRUE(IsDnsLabel(id)) << id;
  }
}

TEST(NamesTest, DistinctNamesWithTheSameSanitizedPrefixStayDistinct) {
  std::set<std::string> ids;
  for (const char* name : {"vol_a", "vol-a", "VOL-A", "vol.a"}) ids.insert(VolumeObjectName(name));
  EXPECT_EQ(ids.size(), 4u);
}

TEST(NamesTest, PageTokensRoundTripAndRejectGarbage) {
  EXPECT_EQ(ParsePageToken(MakePageToken("vol-1")).value(), "vol-1");
  EXPECT_FALSE(ParsePageToken("invalid-token").has_value());
  EXPECT_FALSE(ParsePageToken("after:").has_value());
}

TEST(NamesTest, AttachmentIqnMarksReadOnlyAndMatchesTheCrdPattern) {
  std::string iqn = AttachmentIqn("vol-1", "Node_A", false);
  EXPECT_EQ(iqn.rfind("iqn.2026-11.dev.vios:", 0), 0u) << iqn;
  EXPECT_EQ(iqn.find(' '), std::string::npos);
  EXPECT_EQ(iqn, "iqn.2026-11.dev.vios:vol-1:node-a");
  EXPECT_EQ(AttachmentIqn("v", "n", true), std::string(kIqnPrefix) + ":v:n:ro");
}

}  // namespace
}  // namespace vios::csi
