-- notifyd_missed.lua: FreeSWITCH hangup hook posting `call.missed` to notifyd for an
-- incoming call nobody answered (to_voicemail when it went to voicemail instead).
-- Runs as `api_hangup_hook=lua notifyd_missed.lua` on the caller's leg (the a-leg); the
-- legs a ring group or a follow-me rings (b-legs) carry the a-leg's uuid in `call_uuid` and
-- `originating_leg_uuid`: they report nothing, so one call is one notice whatever rang.
-- Shares notifyd_common.lua with notifyd_voicemail.lua and notifyd_fax.lua;
-- docs/integrations.md ("FreeSWITCH and FusionPBX") has the dialplan and settings.

local nd = require("notifyd_common")
local v = nd.var

local function log(text)
  freeswitch.consoleLog("debug", "notifyd_missed: " .. text .. "\n")
end

-- Why this leg gives no notice, or nil when it is a missed call.
local function not_missed(uuid, to_voicemail)
  local a_leg = nd.first(v("originating_leg_uuid"), v("call_uuid"), uuid)
  if a_leg ~= uuid then
    return "a leg the call rang; the caller's leg reports it"
  end
  if v("call_direction") == "outbound" then
    return "an outgoing call"
  end
  if to_voicemail then
    return nil
  end
  -- Bridged to a phone that answered: the ring group's winner, a transfer, a pickup.
  if v("originate_disposition") == "SUCCESS" or nd.first(v("bridge_uuid"), v("last_bridge_to")) then
    return "answered"
  end
  -- Answered by the switch itself (an IVR, a conference) and never bridged: not missed.
  if nd.number(v("answer_epoch")) > 0 or nd.number(v("billsec")) > 0 then
    return "answered by the switch"
  end
  return nil
end

local function reached_voicemail()
  -- notifyd_voicemail: set by the dialplan before it sends the call to voicemail (FusionPBX,
  -- whose voicemail is a Lua app); voicemail_message_len: mod_voicemail recorded a message;
  -- last_app: mod_voicemail was the call's last application.
  return v("notifyd_voicemail") == "true" or v("voicemail_message_len") ~= nil
    or v("last_app") == "voicemail"
end

local uuid = nd.first(v("uuid"), v("Unique-ID"))
local to_voicemail = reached_voicemail()
local why = not_missed(uuid, to_voicemail)
local account = nd.account(v)
if why ~= nil then
  log(uuid .. ": " .. why)
elseif account == nil then
  freeswitch.consoleLog("warning", "notifyd_missed: " .. uuid .. ": no notifyd_account, "
    .. "accountcode or domain_name on the channel; nothing sent\n")
else
  local start = nd.number(v("start_epoch"))
  -- Ringing ends when voicemail answers, or at hangup.
  local finish = nd.number(v("answer_epoch"))
  if finish <= 0 then
    finish = nd.number(v("end_epoch"))
  end
  if finish <= 0 then
    finish = os.time()
  end
  local withheld = nd.withheld(v("privacy"), v("sip_h_Privacy"))
  local caller = withheld and "anonymous" or nd.first(v("caller_id_number"), "unknown")
  local name = v("caller_id_name")
  if withheld or name == caller then
    name = nil
  end
  local called = nd.first(v("notifyd_called_number"), v("caller_destination"), v("destination_number"))
  local extension = nd.first(v("notifyd_extension"), v("dialed_extension"))
  nd.send("call.missed", account, "call.missed-" .. uuid, {
    {"call_id", uuid},
    {"caller_number", caller},
    {"caller_name", name},
    {"called_number", called},
    {"extension", extension},
    {"started_at", nd.iso(start)},
    {"ring_seconds", start > 0 and math.max(0, finish - start) or nil, true},
    {"to_voicemail", to_voicemail and "true" or "false", true},
  })
end
