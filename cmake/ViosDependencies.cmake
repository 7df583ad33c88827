# Every C++ dependency comes from a Debian package (DESIGN.md §12).
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(Protobuf REQUIRED)
find_package(gRPC CONFIG REQUIRED)
find_package(yaml-cpp CONFIG REQUIRED)
find_package(prometheus-cpp CONFIG REQUIRED)
find_package(nlohmann_json CONFIG REQUIRED)
find_package(GTest CONFIG REQUIRED)
find_package(OpenSSL REQUIRED)
# Debian's cpp-httplib is a compiled library; its pkg-config flags select the matching header
# configuration (OpenSSL, zlib, brotli).
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
pkg_check_modules(LIBISCSI REQUIRED IMPORTED_TARGET libiscsi)
pkg_check_modules(FUSE3 REQUIRED IMPORTED_TARGET fuse3)
pkg_check_modules(URING REQUIRED IMPORTED_TARGET liburing)
