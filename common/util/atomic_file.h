// Atomic file replacement for small state files (ports, peer credentials): write a temp file
// next to the target, fsync it, rename it over the target, fsync the directory. A crash leaves
// either the old or the new content, never a mix (POSIX rename(2) is atomic).
//
//   std::string error;
//   if (!util::WriteFileAtomically(dir + "/ports.json", text, 0600, &error)) log(error);
//   std::optional<std::string> text = util::ReadFile(dir + "/ports.json", &error);
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

namespace vios::util {

// WriteFileAtomically creates missing parent directories (mode 0700) and replaces path.
bool WriteFileAtomically(const std::string& path, const std::string& content, mode_t mode,
                         std::string* error);

// ReadFile returns the whole file; nullopt with *error set when it cannot be read ("" error and
// nullopt when the file does not exist).
std::optional<std::string> ReadFile(const std::string& path, std::string* error);

// MakeDirectories is mkdir -p with the given mode for directories it creates.
bool MakeDirectories(const std::string& path, mode_t mode, std::string* error);

}  // namespace vios::util
