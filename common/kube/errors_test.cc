// Unit tests for mapping API server answers (metav1.Status) to ApiError.
#include "common/kube/errors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace vios::kube {
namespace {

using ::testing::HasSubstr;

std::string Status(int code, const std::string& reason, const std::string& message) {
  return nlohmann::json{{"kind", "Status"}, {"apiVersion", "v1"}, {"status", "Failure"},
                        {"code", code},     {"reason", reason},   {"message", message}}
      .dump();
}

TEST(ErrorsTest, NotFoundStatusNamesTheRequest) {
  ApiError e = ErrorFromResponse("GET", "/api/v1/namespaces/a/configmaps/x", 404,
                                 Status(404, "NotFound", "configmaps \"x\" not found"));
  EXPECT_EQ(e.kind(), ErrorKind::kNotFound);
  EXPECT_EQ(e.code(), 404);
  EXPECT_EQ(e.reason(), "NotFound");
  EXPECT_THAT(e.what(), HasSubstr("GET /api/v1/namespaces/a/configmaps/x"));
  EXPECT_THAT(e.what(), HasSubstr("configmaps \"x\" not found"));
  EXPECT_TRUE(IsNotFound(e));
  EXPECT_FALSE(IsConflict(e));
}

TEST(ErrorsTest, ReasonSeparatesAlreadyExistsFromConflict) {
  EXPECT_EQ(ErrorFromResponse("POST", "/p", 409, Status(409, "AlreadyExists", "")).kind(),
            ErrorKind::kAlreadyExists);
  EXPECT_EQ(ErrorFromResponse("PUT", "/p", 409, Status(409, "Conflict", "")).kind(),
            ErrorKind::kConflict);
}

TEST(ErrorsTest, InvalidCarriesFieldCauses) {
  nlohmann::json status = nlohmann::json::parse(Status(422, "Invalid", "VIOSVolume is invalid"));
  status["details"]["causes"] = {
      {{"reason", "FieldValueRequired"}, {"field", "spec.pool"}, {"message", "Required value"}},
      {{"reason", "FieldValueNotSupported"},
       {"field", "spec.volumeMode"},
       {"message", "Unsupported value: \"Tape\""}}};
  ApiError e = ErrorFromResponse("POST", "/apis/vios.dev/v1alpha1/viosvolumes", 422, status.dump());
  EXPECT_EQ(e.kind(), ErrorKind::kInvalid);
  ASSERT_EQ(e.causes().size(), 2u);
  EXPECT_EQ(e.causes()[0].field, "spec.pool");
  EXPECT_EQ(e.causes()[1].reason, "FieldValueNotSupported");
  EXPECT_THAT(e.what(), HasSubstr("spec.volumeMode: Unsupported value"));
}

TEST(ErrorsTest, TooManyRequestsTakesRetryAfterFromHeaderOrDetails) {
  ApiError header = ErrorFromResponse("GET", "/p", 429, Status(429, "TooManyRequests", ""), "3");
  EXPECT_EQ(header.kind(), ErrorKind::kTooManyRequests);
  ASSERT_TRUE(header.retry_after());
  EXPECT_EQ(header.retry_after()->count(), 3);
  nlohmann::json status = nlohmann::json::parse(Status(429, "TooManyRequests", ""));
  status["details"]["retryAfterSeconds"] = 7;
  ApiError details = ErrorFromResponse("GET", "/p", 429, status.dump());
  ASSERT_TRUE(details.retry_after());
  EXPECT_EQ(details.retry_after()->count(), 7);
  EXPECT_FALSE(ErrorFromResponse("GET", "/p", 429, "", "soon").retry_after());
}

TEST(ErrorsTest, GoneIsExpired) {
  EXPECT_EQ(ErrorFromResponse("GET", "/p", 410, Status(410, "Expired", "too old")).kind(),
            ErrorKind::kExpired);
  EXPECT_EQ(ErrorFromResponse("GET", "/p", 410, "").kind(), ErrorKind::kExpired);
  nlohmann::json event_status = {{"kind", "Status"}, {"code", 410}, {"reason", "Gone"}};
  EXPECT_TRUE(IsExpired(ErrorFromStatus("WATCH", "/p", event_status)));
}

TEST(ErrorsTest, NonStatusBodiesAreClassifiedByCode) {
  ApiError e = ErrorFromResponse("GET", "/p", 502, "<html>bad gateway</html>");
  EXPECT_EQ(e.kind(), ErrorKind::kServerError);
  EXPECT_THAT(e.what(), HasSubstr("HTTP 502"));
  EXPECT_THAT(e.what(), HasSubstr("bad gateway"));
  EXPECT_EQ(ErrorFromResponse("GET", "/p", 401, "").kind(), ErrorKind::kUnauthorized);
  EXPECT_EQ(ErrorFromResponse("GET", "/p", 403, "").kind(), ErrorKind::kForbidden);
  EXPECT_EQ(ErrorFromResponse("GET", "/p", 400, "").kind(), ErrorKind::kBadRequest);
  EXPECT_EQ(ErrorFromResponse("GET", "/p", 504, "").kind(), ErrorKind::kTimeout);
  EXPECT_EQ(ErrorFromResponse("GET", "/p", 418, "").kind(), ErrorKind::kOther);
}

TEST(ErrorsTest, OnlyTransientFailuresAreRetryable) {
  EXPECT_TRUE(IsRetryable(ErrorFromResponse("GET", "/p", 500, "")));
  EXPECT_TRUE(IsRetryable(ErrorFromResponse("GET", "/p", 429, "")));
  EXPECT_TRUE(IsRetryable(ApiError(ErrorKind::kUnreachable, "GET", "/p", 0, "", "refused")));
  EXPECT_FALSE(IsRetryable(ErrorFromResponse("GET", "/p", 404, "")));
  EXPECT_FALSE(IsRetryable(ErrorFromResponse("PUT", "/p", 409, Status(409, "Conflict", ""))));
  EXPECT_FALSE(IsRetryable(ApiError(ErrorKind::kTls, "GET", "/p", 0, "", "bad cert")));
}

}  // namespace
}  // namespace vios::kube
