// Login phase (RFC 7143 §6, §11.12, §11.13): security negotiation (AuthMethod None or CHAP),
// operational negotiation, stage transitions, TSIH assignment, session reinstatement and the
// login failure statuses. A failed login gets one Login Response with the status and the
// connection closes once it is written.
#include <cstring>

#include "common/log/log.h"
#include "node-agent/iscsi/connection.h"

namespace vios::iscsi {
namespace {

bool IsSecurityKey(const std::string& key) {
  return key == "AuthMethod" || key.rfind("CHAP_", 0) == 0;
}

bool IsLoginOnlyKey(const std::string& key) {
  return key == "InitiatorName" || key == "TargetName" || key == "SessionType" ||
         key == "InitiatorAlias";
}

}  // namespace

void Connection::SendLoginResponse(const Bhs& request, bool transit, uint8_t nsg,
                                   LoginStatus status, const TextKeys& keys) {
  LoginRequestView req{request};
  OutPdu* out = NewOut();
  Bhs& bhs = out->bhs();
  bhs.SetOpcode(Opcode::kLoginResponse);
  uint8_t flags = static_cast<uint8_t>((req.csg() & 3) << 2);
  if (transit) flags |= 0x80 | (nsg & 3);
  bhs.SetFlags(flags);
  bhs.bytes[2] = 0x00;                               // Version-max.
  bhs.bytes[3] = 0x00;                               // Version-active.
  std::memcpy(&bhs.bytes[8], &request.bytes[8], 6);  // ISID.
  bhs.SetField16(14, login_.tsih);
  bhs.SetItt(request.itt());
  bhs.bytes[36] = static_cast<uint8_t>(static_cast<uint16_t>(status) >> 8);
  bhs.bytes[37] = static_cast<uint8_t>(static_cast<uint16_t>(status));
  std::vector<uint8_t> data;
  keys.Serialize(&data);
  SetOwnedData(out, std::move(data));
  Enqueue(out, true);
  if (!session_) {
    // During login there is no session yet: report the login's CmdSN window explicitly (no
    // digests are in force yet, so patching the header after Enqueue is safe).
    bhs.SetExpCmdSn(CmdSnOf(request));
    bhs.SetMaxCmdSn(CmdSnOf(request) + server_->config().queue_depth - 1);
  }
}

void Connection::LoginFailed(const Bhs& request, LoginStatus status, std::string_view why) {
  VIOS_LOG(kWarning, "iscsi login failed")
      .Field("status", static_cast<unsigned>(status))
      .Field("reason", why)
      .Field("initiator", login_.initiator_name)
      .Field("target", login_.target ? login_.target->iqn() : std::string());
  if (login_.target) login_.target->counters().login_failures++;
  SendLoginResponse(request, false, 0, status, TextKeys());
  out_tail_->close_after = true;
  logout_sent_ = true;  // Ignore anything else the initiator sends.
}

bool Connection::LoginFirstPdu(const TextKeys& keys, LoginStatus* status) {
  const std::string* initiator = keys.Find("InitiatorName");
  if (initiator == nullptr || initiator->empty()) {
    *status = LoginStatus::kMissingParameter;
    return false;
  }
  login_.initiator_name = *initiator;
  const std::string* type = keys.Find("SessionType");
  if (type != nullptr && *type != "Normal" && *type != "Discovery") {
    *status = LoginStatus::kSessionTypeNotSupported;
    return false;
  }
  login_.discovery = type != nullptr && *type == "Discovery";
  login_.params.discovery = login_.discovery;
  if (login_.discovery) {
    login_.auth_required = server_->config().discovery_chap.enabled();
    return true;
  }
  const std::string* target_name = keys.Find("TargetName");
  if (target_name == nullptr || target_name->empty()) {
    *status = LoginStatus::kMissingParameter;
    return false;
  }
  auto target = server_->registry().Find(*target_name);
  // A target not reachable through this portal does not exist as far as this initiator knows.
  if (!target || target->removed() || !target->OnPortalGroup(portal_.tpgt)) {
    *status = LoginStatus::kNotFound;
    return false;
  }
  login_.target = target;
  if (!target->InitiatorAllowed(login_.initiator_name)) {
    *status = LoginStatus::kAuthorizationFailure;
    return false;
  }
  login_.auth_required = target->config().chap.enabled();
  return true;
}

bool Connection::LoginSecurityKeys(const TextKeys& keys, TextKeys* response, LoginStatus* status) {
  const ChapCredentials& creds =
      login_.discovery ? server_->config().discovery_chap : login_.target->config().chap;
  if (const std::string* methods = keys.Find("AuthMethod")) {
    std::string chosen = "Reject";
    for (auto m : SplitList(*methods)) {
      if (login_.auth_required ? m == "CHAP" : m == "None") {
        chosen = std::string(m);
        break;
      }
    }
    response->Add("AuthMethod", chosen);
    if (chosen == "Reject") {
      *status = LoginStatus::kAuthenticationFailure;
      return false;
    }
    login_.auth_method_chosen = true;
    if (chosen == "None") login_.authenticated = true;
    if (chosen == "CHAP") login_.chap = std::make_unique<ChapAuthenticator>(creds);
  }
  bool has_chap = false;
  for (const auto& [k, v] : keys.pairs()) has_chap = has_chap || k.rfind("CHAP_", 0) == 0;
  if (has_chap || (login_.chap && !login_.chap->done() && !keys.Has("AuthMethod"))) {
    if (!login_.chap) {
      *status = LoginStatus::kInitiatorError;  // CHAP keys without AuthMethod=CHAP.
      return false;
    }
    std::string why;
    auto result = login_.chap->Step(keys, response, &why);
    if (result == ChapAuthenticator::Result::kFailure) {
      VIOS_LOG(kWarning, "iscsi CHAP failed").Field("reason", why);
      *status = LoginStatus::kAuthenticationFailure;
      return false;
    }
    if (result == ChapAuthenticator::Result::kSuccess) login_.authenticated = true;
  }
  return true;
}

bool Connection::LoginOperationalKeys(const TextKeys& keys, TextKeys* response,
                                      LoginStatus* status) {
  Negotiator negotiator(server_->config().limits, &login_.params);
  for (const auto& [key, value] : keys.pairs()) {
    if (IsSecurityKey(key)) {
      if (login_.stage == Stage::kOperational) {
        *status = LoginStatus::kInitiatorError;  // Security keys after the security stage.
        return false;
      }
      continue;
    }
    if (IsLoginOnlyKey(key)) continue;
    if (key == "TargetAlias" || key == "TargetAddress" || key == "TargetPortalGroupTag") {
      *status = LoginStatus::kInitiatorError;  // Target-declared keys (§13.6, §13.8, §13.9).
      return false;
    }
    if (!negotiator.Respond(key, value, response)) response->Add(key, "NotUnderstood");
  }
  if (login_.stage == Stage::kOperational) negotiator.Finish(response);
  return true;
}

bool Connection::EnterFullFeature(LoginStatus* status) {
  SessionTable::Entry entry;
  entry.initiator_name = login_.initiator_name;
  entry.isid = login_.isid;
  entry.target = login_.target ? login_.target->iqn() : std::string();
  entry.closer = server_->CloserFor(loop_, id_);
  if (login_.target) {
    std::string initiator_port = login_.initiator_name + ",i,0x" + FormatIsid(login_.isid);
    if (!login_.target->Attach(id_, server_->HandleFor(loop_, id_, std::move(initiator_port)))) {
      *status = LoginStatus::kTargetRemoved;
      return false;
    }
    attached_ = true;
  }
  std::function<void()> reinstated;
  uint16_t tsih = server_->sessions().Register(std::move(entry), &reinstated);
  if (tsih == 0) {
    *status = LoginStatus::kOutOfResources;
    return false;
  }
  // ERL0 reinstatement (§6.3.5): the old session with this ISID ends; its tasks are dropped.
  if (reinstated) reinstated();
  login_.tsih = tsih;
  session_ = std::make_unique<Session>(login_.target, login_.initiator_name, login_.isid, tsih,
                                       portal_.tpgt, login_.params, server_->config().queue_depth);
  return true;
}

void Connection::HandleLogin(const Pdu& pdu) {
  const Bhs& bhs = pdu.bhs;
  LoginRequestView req{bhs};
  if (!login_.started) {
    login_.started = true;
    login_.isid = req.isid();
    login_.tsih = req.tsih();
    login_.cid = req.cid();
    stat_sn_ = ExpStatSnOf(bhs);
    login_.stage = req.csg() == 1 ? Stage::kOperational : Stage::kSecurity;
  } else if (req.isid() != login_.isid || req.cid() != login_.cid) {
    LoginFailed(bhs, LoginStatus::kInitiatorError, "ISID or CID changed during login");
    return;
  }
  if (req.version_min() > 0x00) {
    LoginFailed(bhs, LoginStatus::kUnsupportedVersion, "unsupported version");
    return;
  }
  if (login_.tsih != 0 && !session_) {
    // Adding a connection to an existing session: MaxConnections=1, so there is none to join.
    LoginFailed(bhs, LoginStatus::kSessionDoesNotExist, "connection for existing session");
    return;
  }
  if (req.csg() != static_cast<uint8_t>(login_.stage) ||
      (req.transit() && (req.nsg() == 2 || req.nsg() <= req.csg()))) {
    LoginFailed(bhs, LoginStatus::kInitiatorError, "invalid stage transition");
    return;
  }
  // Text split over several PDUs (C bit): gather, acknowledge with an empty response (§6.6).
  login_.partial_text.insert(login_.partial_text.end(), pdu.data.begin(), pdu.data.end());
  if (login_.partial_text.size() > kMaxTextLength) {
    LoginFailed(bhs, LoginStatus::kInitiatorError, "login text too long");
    return;
  }
  if (req.cont()) {
    SendLoginResponse(bhs, false, 0, LoginStatus::kSuccess, TextKeys());
    return;
  }
  TextKeys keys;
  std::string error;
  bool parsed = keys.Parse(login_.partial_text, &error);
  login_.partial_text.clear();
  if (!parsed) {
    LoginFailed(bhs, LoginStatus::kInitiatorError, error);
    return;
  }
  LoginStatus status = LoginStatus::kSuccess;
  if (login_.initiator_name.empty() && !LoginFirstPdu(keys, &status)) {
    LoginFailed(bhs, status, "login keys");
    return;
  }
  TextKeys response;
  if (!login_.sent_tpgt && !login_.discovery) {
    // §13.9: the first Login Response of a normal session names the portal group.
    response.Add("TargetPortalGroupTag", std::to_string(portal_.tpgt));
    if (!login_.target->config().alias.empty()) {
      response.Add("TargetAlias", login_.target->config().alias);
    }
    login_.sent_tpgt = true;
  }
  if (login_.stage == Stage::kSecurity && !LoginSecurityKeys(keys, &response, &status)) {
    LoginFailed(bhs, status, "security negotiation");
    return;
  }
  if (!LoginOperationalKeys(keys, &response, &status)) {
    LoginFailed(bhs, status, "operational negotiation");
    return;
  }
  bool transit = req.transit();
  if (transit && login_.stage == Stage::kSecurity && !login_.authenticated) {
    if (login_.auth_required && login_.chap == nullptr) {
      LoginFailed(bhs, LoginStatus::kAuthenticationFailure, "authentication required");
      return;
    }
    if (login_.chap != nullptr) {
      transit = false;  // Mid-CHAP: stay in the security stage until the exchange is done.
    } else {
      login_.authenticated = true;  // No AuthMethod offered and none required.
    }
  }
  if (transit && login_.stage == Stage::kSecurity && req.nsg() == 3) {
    Negotiator(server_->config().limits, &login_.params).Finish(&response);
  }
  if (login_.stage == Stage::kOperational && login_.auth_required && !login_.authenticated) {
    LoginFailed(bhs, LoginStatus::kAuthenticationFailure, "security stage skipped");
    return;
  }
  uint8_t nsg = req.nsg();
  if (transit && nsg == 3) {
    if (!EnterFullFeature(&status)) {
      LoginFailed(bhs, status, "entering full feature phase");
      return;
    }
    // The window starts at the login's CmdSN (§3.2.2.1: login does not consume one).
    session_->set_exp_cmd_sn(CmdSnOf(bhs));
    SendLoginResponse(bhs, true, nsg, LoginStatus::kSuccess, response);
    // Digests and the declared receive size apply from the first full feature phase PDU on.
    const SessionParams& p = session_->params();
    header_digest_ = p.header_digest;
    data_digest_ = p.data_digest;
    reader_.SetLimits(p.target_max_recv_data_segment_length, p.header_digest, p.data_digest);
    if (Target* target = session_->target()) {
      target->counters().logins++;
      target->counters().active_sessions++;
      target->device()->NexusAdded(session_->nexus());
      nexus_added_ = true;
    }
    VIOS_LOG(kInfo, "iscsi session logged in")
        .Field("initiator", login_.initiator_name)
        .Field("target", login_.target ? login_.target->iqn() : std::string("discovery"))
        .Field("tsih", static_cast<unsigned>(login_.tsih))
        .Field("header_digest", p.header_digest)
        .Field("data_digest", p.data_digest);
    return;
  }
  SendLoginResponse(bhs, transit, nsg, LoginStatus::kSuccess, response);
  if (transit) login_.stage = static_cast<Stage>(nsg);
}

}  // namespace vios::iscsi
