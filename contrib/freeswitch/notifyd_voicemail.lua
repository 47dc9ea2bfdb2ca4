-- notifyd_voicemail.lua: FreeSWITCH event hook posting `voicemail.received` to notifyd, with
-- the recording attached, when mod_voicemail stores a message (the CUSTOM event
-- vm::maintenance, VM-Action leave-message): the email mod_voicemail would send, sent by
-- notifyd instead. Installed in lua.conf.xml as
--   <hook event="CUSTOM" subclass="vm::maintenance" script="notifyd_voicemail.lua"/>
-- With the caller's leg's uuid as call_id, notifyd joins it to the missed call
-- notifyd_missed.lua posted (to_voicemail): one email. Shares notifyd_common.lua;
-- docs/integrations.md ("FreeSWITCH and FusionPBX") has the settings.

local nd = require("notifyd_common")

local function h(name)
  local value = event:getHeader(name)
  if value == nil or value == "" then
    return nil
  end
  return value
end

local function channel(name)
  return h("variable_" .. name)
end

if h("VM-Action") == "leave-message" then
  local file = h("VM-File-Path")
  local account = nd.account(channel) or h("VM-Domain")
  -- The call: the caller's leg (a ring group's b-legs carry it as call_uuid); without the
  -- channel's data in the event, the message's own uuid, and no call_id.
  local call_id = nd.first(channel("call_uuid"), h("Unique-ID"))
  local message = nd.first(h("VM-UUID"), call_id, file)
  local caller = h("VM-Caller-ID-Number")
  local withheld = nd.withheld(channel("privacy"), channel("sip_h_Privacy"))
  if withheld then
    caller = "anonymous"
  end
  local name = h("VM-Caller-ID-Name")
  if withheld or name == caller then
    name = nil
  end
  nd.send("voicemail.received", account, "voicemail.received-" .. message, {
    {"call_id", call_id},
    {"mailbox", h("VM-User")},
    {"caller_number", nd.first(caller, "unknown")},
    {"caller_name", name},
    {"duration_seconds", nd.number(h("VM-Message-Len")), true},
    {"received_at", nd.iso(h("VM-Timestamp"))},
  }, {{"audio", file}})
end
