// Test helpers for the reservation tests: nexuses, PR OUT/IN CDBs and parameter lists.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "node-agent/reservation/pr_engine.h"
#include "node-agent/scsi/scsi_wire.h"

namespace vios::reservation::testing {

// MakeNexus: initiator i (name iqn.test:i<i>, ISID ...0i) on target port "iqn.t,t,0x1".
inline scsi::Nexus MakeNexus(int i) {
  scsi::Nexus n;
  n.initiator_name = "iqn.2026-11.dev.vios:init" + std::to_string(i);
  n.isid = {0x23, 0xd0, 0x00, 0x00, 0x00, static_cast<uint8_t>(i)};
  n.initiator_port = n.initiator_name + ",i,0x" + FormatIsid(n.isid);
  n.target_port = "iqn.2026-11.dev.vios:target,t,0x1";
  n.relative_target_port = 1;
  return n;
}

inline std::array<uint8_t, 10> ProutCdb(ProutAction action, uint8_t type = 0, uint32_t length = 24,
                                        uint8_t scope = 0) {
  std::array<uint8_t, 10> cdb{};
  cdb[0] = kOpPersistentReserveOut;
  cdb[1] = static_cast<uint8_t>(action);
  cdb[2] = static_cast<uint8_t>((scope << 4) | (type & 0x0F));
  scsi::wire::Store32(&cdb[5], length);
  return cdb;
}

inline std::array<uint8_t, 10> PrinCdb(PrinAction action, uint16_t allocation = 8192) {
  std::array<uint8_t, 10> cdb{};
  cdb[0] = kOpPersistentReserveIn;
  cdb[1] = static_cast<uint8_t>(action);
  scsi::wire::Store16(&cdb[7], allocation);
  return cdb;
}

inline std::vector<uint8_t> ProutParams(uint64_t key, uint64_t sa_key, bool aptpl = false,
                                        uint8_t extra_flags = 0) {
  std::vector<uint8_t> p(24, 0);
  scsi::wire::Store64(&p[0], key);
  scsi::wire::Store64(&p[8], sa_key);
  p[20] = static_cast<uint8_t>((aptpl ? 0x01 : 0x00) | extra_flags);
  return p;
}

// Out runs one PR OUT with a basic parameter list.
inline PrResult Out(const PrState& s, const scsi::Nexus& n, ProutAction a, uint64_t key,
                    uint64_t sa_key, uint8_t type = 0, bool aptpl = false) {
  const auto cdb = ProutCdb(a, type);
  const auto p = ProutParams(key, sa_key, aptpl);
  return PersistentReserveOut(s, n, cdb, p);
}

inline bool HasSense(const PrResult& r, scsi::SenseKey key, scsi::Asc asc) {
  return r.status == scsi::Status::kCheckCondition && r.sense.has_value() && r.sense->key == key &&
         r.sense->asc.asc == asc.asc && r.sense->asc.ascq == asc.ascq;
}

}  // namespace vios::reservation::testing
