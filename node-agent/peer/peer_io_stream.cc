// IoStream server reactor: batches in, I/O on the local device, batches of answers out
// (peer_io_stream.h).
#include "node-agent/peer/peer_io_stream.h"

#include <cerrno>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "node-agent/peer/peer_io.h"

namespace vios::agent::peer {
namespace {

using vios::peer::v1::IoBatch;
using vios::peer::v1::IoRequest;
using vios::peer::v1::IoResponse;
using vios::peer::v1::IoResultBatch;

class IoStreamReactor final : public grpc::ServerBidiReactor<IoBatch, IoResultBatch> {
 public:
  IoStreamReactor(IoStreamHost* host, std::string identity, const grpc::Status& refuse)
      : host_(host), identity_(std::move(identity)) {
    if (!refuse.ok()) {
      finished_ = true;
      Finish(refuse);
      return;
    }
    served_ = &host_->Served(identity_);
    reading_ = TakeInLocked();  // no other thread knows this reactor yet
    StartRead(&reading_->message);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the client half-closed or the call ended: answer what is inside, then finish
      bool finish = false;
      {
        std::lock_guard<std::mutex> lock(mu_);
        reads_done_ = true;
        finish = ShouldFinishLocked();
      }
      if (finish) Finish(grpc::Status::OK);
      return;
    }
    InBatch* batch = reading_;
    {
      std::lock_guard<std::mutex> lock(mu_);
      reading_ = TakeInLocked();
      batch->pending = 1;  // held by Submit until every request of it is submitted
      ++inside_;           // so is the stream: no Finish while Submit runs
    }
    StartRead(&reading_->message);  // the next message arrives while this one runs
    Submit(batch);
  }

  void OnWriteDone(bool ok) override {
    OutBatch* next = nullptr;
    bool finish = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      RecycleOutLocked();
      if (!ok) {  // the client is gone: the answers have no taker
        write_failed_ = true;
        while (!out_.empty()) RecycleOutLocked();
      }
      if (!out_.empty()) {
        next = out_.front();
      } else {
        writing_ = false;
        finish = ShouldFinishLocked();
      }
    }
    if (next != nullptr) {
      StartWrite(&next->message);
    } else if (finish) {
      Finish(grpc::Status::OK);
    }
  }

  // Finish is called only with no request inside a backend: nothing refers to us any more.
  void OnDone() override { delete this; }

 private:
  // InBatch: one received IoBatch, alive while writes of it are inside a backend.
  struct InBatch {
    IoBatch message;
    int pending = 0;  // guarded by mu_
  };
  struct OutBatch {
    IoResultBatch message;
    uint64_t bytes = 0;
  };
  // Op: one request inside a backend. Pooled; response.data is its read buffer.
  struct Op final : backend::IoCompletion {
    IoStreamReactor* stream = nullptr;
    InBatch* batch = nullptr;
    backend::IoRequest io;
    IoResponse response;
    void IoDone(backend::IoRequest* /*request*/) override { stream->OpDone(this); }
  };

  void Submit(InBatch* batch) {
    for (const IoRequest& req : batch->message.requests()) {
      backend::BlockDevice* device = host_->LocalDevice(req.pool(), req.backend());
      std::string error;
      int errno_value = 0;
      if (device == nullptr) {
        error = "pool/backend: no backend " + req.pool() + "/" + req.backend();
        errno_value = ENOTCONN;  // a path error: the caller tries another path
      } else {
        error = ValidateIo(req, *device, host_->MaxIoBytes());
        errno_value = EINVAL;
      }
      if (!error.empty()) {
        host_->IoRefused(identity_, error);
        OutBatch* start = nullptr;
        {
          std::lock_guard<std::mutex> lock(mu_);
          IoResponse* r = AnswerLocked(0, &start);
          if (r != nullptr) {
            r->set_request_id(req.request_id());
            r->set_error(errno_value);
          }
        }
        if (start != nullptr) StartWrite(&start->message);
        continue;
      }
      Op* op;
      {
        std::lock_guard<std::mutex> lock(mu_);
        op = TakeOpLocked();
        ++inside_;
        ++batch->pending;
      }
      host_->IoStarted();
      op->batch = batch;
      op->io = backend::IoRequest{};
      ToBackendOp(req.op(), &op->io.op);
      op->io.offset = req.offset();
      op->io.length = req.length();
      op->response.set_request_id(req.request_id());
      op->response.set_error(0);
      if (op->io.op == backend::IoOp::kRead) {
        std::string* data = op->response.mutable_data();
        data->resize(req.length());
        op->io.read_buffer =
            std::span<uint8_t>(reinterpret_cast<uint8_t*>(data->data()), data->size());
      } else {
        op->response.clear_data();
        if (op->io.op == backend::IoOp::kWrite) {  // straight from the received message
          op->io.write_buffer = std::span<const uint8_t>(
              reinterpret_cast<const uint8_t*>(req.data().data()), req.data().size());
        }
      }
      op->io.completion = op;
      device->Submit(&op->io);
    }
    bool finish = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ReleaseInLocked(batch);
      --inside_;
      finish = ShouldFinishLocked();
    }
    if (finish) Finish(grpc::Status::OK);
  }

  void OpDone(Op* op) {
    IoStreamHost* host = host_;  // `this` may be gone once the lock is released without a write
    std::atomic<uint64_t>* served = served_;
    const int result = op->io.result;
    OutBatch* start = nullptr;
    bool finish = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      const uint64_t bytes = result == 0 ? op->response.data().size() : 0;
      IoResponse* r = AnswerLocked(bytes, &start);
      if (r != nullptr) {
        r->Swap(&op->response);  // the read data moves, the slot's old buffer comes back
        if (result != 0) {
          r->set_error(-result);
          r->clear_data();
        }
      }
      ReleaseInLocked(op->batch);
      op->batch = nullptr;
      op_free_.push_back(op);
      --inside_;
      finish = start == nullptr && ShouldFinishLocked();
    }
    served->fetch_add(1, std::memory_order_relaxed);
    if (start != nullptr) {
      StartWrite(&start->message);
    } else if (finish) {
      Finish(grpc::Status::OK);
    }
    host->IoFinished();
  }

  // AnswerLocked returns the slot for one answer carrying `bytes` of data (null when the client
  // is gone) and, in *start, the batch to write now if no write is on the wire.
  IoResponse* AnswerLocked(uint64_t bytes, OutBatch** start) {
    if (write_failed_ || finished_) return nullptr;
    // The front batch is on the wire while writing_; later ones collect answers.
    const size_t sealed = writing_ ? 1 : 0;
    OutBatch* batch = nullptr;
    if (out_.size() > sealed &&
        (out_.back()->bytes == 0 || out_.back()->bytes + bytes <= kMaxBatchBytes)) {
      batch = out_.back();
    } else {
      if (out_free_.empty()) {
        out_all_.push_back(std::make_unique<OutBatch>());
        out_free_.push_back(out_all_.back().get());
      }
      batch = out_free_.back();
      out_free_.pop_back();
      out_.push_back(batch);
    }
    batch->bytes += bytes;
    if (!writing_) {
      writing_ = true;
      *start = out_.front();
    }
    return batch->message.add_responses();
  }

  void RecycleOutLocked() {
    OutBatch* done = out_.front();
    out_.pop_front();
    done->message.Clear();  // keeps the answer slots and their buffers for reuse
    done->bytes = 0;
    out_free_.push_back(done);
  }

  bool ShouldFinishLocked() {
    if (finished_ || !reads_done_ || inside_ != 0 || writing_ || !out_.empty()) return false;
    finished_ = true;
    return true;
  }

  InBatch* TakeInLocked() {
    if (in_free_.empty()) {
      in_all_.push_back(std::make_unique<InBatch>());
      in_free_.push_back(in_all_.back().get());
    }
    InBatch* b = in_free_.back();
    in_free_.pop_back();
    return b;
  }

  void ReleaseInLocked(InBatch* batch) {
    if (--batch->pending == 0) {
      batch->message.Clear();
      in_free_.push_back(batch);
    }
  }

  Op* TakeOpLocked() {
    if (op_free_.empty()) {
      op_all_.push_back(std::make_unique<Op>());
      op_all_.back()->stream = this;
      op_free_.push_back(op_all_.back().get());
    }
    Op* op = op_free_.back();
    op_free_.pop_back();
    return op;
  }

  IoStreamHost* const host_;
  const std::string identity_;
  std::atomic<uint64_t>* served_ = nullptr;
  InBatch* reading_ = nullptr;  // the message StartRead fills (touched by the reader only)

  std::mutex mu_;
  std::vector<std::unique_ptr<InBatch>> in_all_;  // guarded by mu_ (pools: no allocation once
  std::vector<InBatch*> in_free_;                 // warm)
  std::vector<std::unique_ptr<Op>> op_all_;
  std::vector<Op*> op_free_;
  std::vector<std::unique_ptr<OutBatch>> out_all_;
  std::vector<OutBatch*> out_free_;
  std::deque<OutBatch*> out_;  // answers to send; the front is on the wire while writing_
  int inside_ = 0;             // requests inside a backend
  bool writing_ = false;
  bool write_failed_ = false;
  bool reads_done_ = false;
  bool finished_ = false;
};

}  // namespace

grpc::ServerBidiReactor<IoBatch, IoResultBatch>* NewIoStreamReactor(IoStreamHost* host,
                                                                    std::string identity,
                                                                    const grpc::Status& refuse) {
  return new IoStreamReactor(host, std::move(identity), refuse);
}

}  // namespace vios::agent::peer
