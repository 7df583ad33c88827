// IgnoreSigpipe: writing to a connection the other end closed raises SIGPIPE inside OpenSSL (it
// writes with write(), no MSG_NOSIGNAL), which would kill the process; a network peer must never
// be able to do that. Libraries that write to sockets through OpenSSL call this once before
// their first connection. Only the default disposition is replaced: a process that installed its
// own handler keeps it.
#pragma once

namespace vios::util {

void IgnoreSigpipe();

}  // namespace vios::util
