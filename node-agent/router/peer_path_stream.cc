// PeerPath's IoStream transport (peer_path.h): one long-lived bidirectional stream per path,
// requests batched while a message is on the wire, answers matched by request id, a deadline per
// request, and a broken stream failing everything on it so the router retries elsewhere.
//
// All events of a stream arrive on the path's own completion queue (DrainCompletions); its state
// is guarded by io_mu_. Requests complete outside the lock (IoDone may submit again). A stream
// is deleted once gRPC returned every operation started on it (ops == 0 after Finish).
#include <cerrno>
#include <deque>

#include <grpcpp/client_context.h>

#include "common/log/log.h"
#include "node-agent/peer/peer_io.h"
#include "node-agent/peer/peer_io_stream.h"
#include "node-agent/router/peer_path.h"

namespace vios::router {

using vios::peer::v1::IoBatch;
using vios::peer::v1::IoResultBatch;

struct PeerPath::Stream {
  explicit Stream(PeerPath* p) : path(p) {}
  PeerPath* path;
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientAsyncReaderWriter<IoBatch, IoResultBatch>> rw;
  Tag start{Tag::Kind::kStart, this, nullptr};
  Tag read{Tag::Kind::kRead, this, nullptr};
  Tag write{Tag::Kind::kWrite, this, nullptr};
  Tag finish{Tag::Kind::kFinish, this, nullptr};
  // Two answer buffers: the next read fills one while the answers of the other complete.
  IoResultBatch in[2];
  int in_index = 0;
  std::deque<OutBatch*> out;  // front is on the wire while writing
  grpc::Status status;
  int ops = 0;  // operations started and not yet returned by the completion queue
  bool started = false;
  bool writing = false;
  bool broken = false;     // no new requests; cancelled
  bool finishing = false;  // Finish was called
};

PeerPath::Stream* PeerPath::NewStreamLocked() {
  auto* s = new Stream(this);
  s->rw = stub_->PrepareAsyncIoStream(&s->ctx, &cq_);
  ++s->ops;
  s->rw->StartCall(&s->start);
  ++live_streams_;
  stream_ = s;
  return s;
}

PeerPath::OutBatch* PeerPath::BatchForLocked(Stream* s, uint64_t bytes) {
  const size_t sealed = s->writing ? 1 : 0;  // the front batch may be on the wire
  if (s->out.size() > sealed &&
      (s->out.back()->bytes == 0 || s->out.back()->bytes + bytes <= agent::peer::kMaxBatchBytes)) {
    s->out.back()->bytes += bytes;
    return s->out.back();
  }
  if (free_batches_.empty()) {
    batches_.push_back(std::make_unique<OutBatch>());
    free_batches_.push_back(batches_.back().get());
  }
  OutBatch* b = free_batches_.back();
  free_batches_.pop_back();
  b->bytes = bytes;
  s->out.push_back(b);
  return b;
}

void PeerPath::StartWriteLocked(Stream* s) {
  s->writing = true;
  ++s->ops;
  s->rw->Write(s->out.front()->message, &s->write);
}

void PeerPath::ForwardStream(backend::IoRequest* request) {
  std::lock_guard<std::mutex> lock(io_mu_);
  Stream* s = stream_;
  if (s == nullptr) s = NewStreamLocked();
  const uint32_t index = agent::peer::TakeSlot(&slots_, &free_slots_);
  Slot& slot = slots_[index];
  slot.request = request;
  slot.stream = s;
  slot.deadline = std::chrono::steady_clock::now() + options_.io_deadline;
  const uint64_t id = (static_cast<uint64_t>(slot.generation) << 32) | index;

  const uint64_t bytes = request->op == backend::IoOp::kWrite ? request->write_buffer.size() : 0;
  OutBatch* batch = BatchForLocked(s, bytes);
  vios::peer::v1::IoRequest* req = batch->message.add_requests();  // a reused slot: no alloc
  req->set_pool(options_.pool);
  req->set_backend(options_.backend);
  req->set_op(agent::peer::ToProtoOp(request->op));
  req->set_offset(request->offset);
  req->set_request_id(id);
  switch (request->op) {
    case backend::IoOp::kRead:
      req->set_length(request->read_buffer.size());
      break;
    case backend::IoOp::kWrite:
      req->set_length(request->write_buffer.size());
      req->mutable_data()->assign(reinterpret_cast<const char*>(request->write_buffer.data()),
                                  request->write_buffer.size());
      break;
    case backend::IoOp::kFlush:
      req->set_length(0);
      break;
    default:
      req->set_length(request->length);
      break;
  }
  if (s->started && !s->writing) StartWriteLocked(s);
}

void PeerPath::BreakLocked(Stream* s) {
  if (stream_ == s) stream_ = nullptr;
  if (!s->broken) {
    s->broken = true;
    s->ctx.TryCancel();  // the pending read returns !ok; Finish follows from there
  }
}

void PeerPath::FailStreamLocked(Stream* s, int result, std::vector<Finished>* done) {
  for (uint32_t i = 0; i < slots_.size(); ++i) {
    Slot& slot = slots_[i];
    if (slot.request == nullptr || slot.stream != s) continue;
    done->push_back(Finished{slot.request, result, nullptr});
    slot.request = nullptr;
    slot.stream = nullptr;
    ++slot.generation;
    free_slots_.push_back(i);
  }
}

void PeerPath::ExpireLocked(std::chrono::steady_clock::time_point now,
                            std::vector<Finished>* done) {
  for (uint32_t i = 0; i < slots_.size(); ++i) {
    Slot& slot = slots_[i];
    if (slot.request == nullptr || slot.deadline > now) continue;
    // The peer did not answer in time: this request fails with a path error at once, and the
    // stream is broken (its other requests fail when it ends): a peer that stops answering
    // one request is not trusted with the next.
    VIOS_LOG(kWarning, "peer I/O deadline exceeded").Field("path", Name());
    Stream* s = slot.stream;
    done->push_back(Finished{slot.request, -ETIMEDOUT, nullptr});
    slot.request = nullptr;
    slot.stream = nullptr;
    ++slot.generation;
    free_slots_.push_back(i);
    BreakLocked(s);
  }
}

void PeerPath::OnStreamEvent(Tag* tag, bool ok, std::vector<Finished>* done) {
  Stream* s = tag->stream;
  std::lock_guard<std::mutex> lock(io_mu_);
  --s->ops;
  switch (tag->kind) {
    case Tag::Kind::kStart:
      if (ok && !s->broken) {
        s->started = true;
        ++s->ops;
        s->rw->Read(&s->in[s->in_index], &s->read);
        if (!s->out.empty() && !s->writing) StartWriteLocked(s);
        break;
      }
      BreakLocked(s);
      s->finishing = true;  // no read was started: finish now
      ++s->ops;
      s->rw->Finish(&s->status, &s->finish);
      break;
    case Tag::Kind::kRead: {
      if (!ok) {  // the stream ended (peer gone, cancelled): collect its status
        BreakLocked(s);
        s->finishing = true;
        ++s->ops;
        s->rw->Finish(&s->status, &s->finish);
        break;
      }
      IoResultBatch& got = s->in[s->in_index];
      s->in_index ^= 1;
      ++s->ops;
      s->rw->Read(&s->in[s->in_index], &s->read);  // `got` is not overwritten before we return
      for (const auto& r : got.responses()) {
        const uint64_t index = r.request_id() & 0xffffffffu;
        const uint32_t generation = static_cast<uint32_t>(r.request_id() >> 32);
        if (index >= slots_.size()) continue;
        Slot& slot = slots_[index];
        if (slot.request == nullptr || slot.generation != generation || slot.stream != s) {
          continue;  // a late answer to a request that already timed out
        }
        done->push_back(Finished{slot.request, r.error() != 0 ? -r.error() : 0, &r.data()});
        slot.request = nullptr;
        slot.stream = nullptr;
        ++slot.generation;
        free_slots_.push_back(static_cast<uint32_t>(index));
      }
      break;
    }
    case Tag::Kind::kWrite: {
      s->writing = false;
      OutBatch* sent = s->out.front();
      s->out.pop_front();
      sent->message.Clear();  // keeps the request slots and their buffers for reuse
      sent->bytes = 0;
      free_batches_.push_back(sent);
      if (!ok) {
        BreakLocked(s);
      } else if (!s->out.empty() && !s->broken) {
        StartWriteLocked(s);
      }
      break;
    }
    case Tag::Kind::kFinish: {
      int result = agent::peer::ErrnoForStatus(s->status);
      if (result == 0) result = -ECONNRESET;  // ended with requests unanswered
      if (s->status.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
        unary_fallback_ = true;  // a peer without IoStream: one call per I/O from now on
      }
      FailStreamLocked(s, result, done);
      if (!done->empty() || !s->status.ok()) {
        VIOS_LOG(kInfo, "peer I/O stream ended")
            .Field("path", Name())
            .Field("code", static_cast<int>(s->status.error_code()))
            .Field("error", s->status.error_message())
            .Field("failed_requests", done->size());
      }
      break;
    }
    case Tag::Kind::kUnary:
      break;
  }
  if (s->finishing && s->ops == 0) {
    // Batches not sent go back to the pool; their requests were failed above.
    for (OutBatch* b : s->out) {
      b->message.Clear();
      b->bytes = 0;
      free_batches_.push_back(b);
    }
    delete s;
    if (--live_streams_ == 0) streams_cv_.notify_all();
  }
}

}  // namespace vios::router
