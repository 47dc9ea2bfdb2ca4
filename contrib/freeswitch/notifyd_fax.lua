-- notifyd_fax.lua: FreeSWITCH hangup hook posting a fax's outcome to notifyd after mod_spandsp's
-- rxfax or txfax: `fax.received` with the TIFF attached (notifyd makes it a PDF), `fax.sent`,
-- or `fax.failed` with spandsp's reason. Runs as
--   api_hangup_hook=lua notifyd_fax.lua received    (before rxfax)
--   api_hangup_hook=lua notifyd_fax.lua sent        (on the leg that runs txfax)
-- reading spandsp's fax_success, fax_result_text, fax_document_transferred_pages,
-- fax_remote_station_id, and the dialplan's notifyd_fax_file (the TIFF rxfax writes) and
-- notifyd_fax_number (the number a fax was sent to). Shares notifyd_common.lua;
-- docs/integrations.md ("Fax servers") has the dialplan.

local nd = require("notifyd_common")
local v = nd.var

local direction = argv[1]
local uuid = nd.first(v("uuid"), v("Unique-ID"))
local account = nd.account(v)
local pages = nd.number(v("fax_document_transferred_pages"))
local done = v("fax_success") == "1" and pages > 0
local at = nd.iso(nd.first(v("end_epoch"), tostring(os.time())))

if account == nil then
  freeswitch.consoleLog("warning", "notifyd_fax: " .. uuid .. ": no account; nothing sent\n")
elseif direction == "received" then
  if done then
    nd.send("fax.received", account, "fax.received-" .. uuid, {
      {"remote_number", nd.first(v("caller_id_number"), v("fax_remote_station_id"), "unknown")},
      {"pages", pages, true},
      {"received_at", at},
    }, {{"document", v("notifyd_fax_file")}})
  else
    -- SPEC has no event for a fax that did not come in: the sender's machine tells its user.
    freeswitch.consoleLog("info", "notifyd_fax: " .. uuid .. ": no fax received ("
      .. nd.first(v("fax_result_text"), v("hangup_cause"), "?") .. ")\n")
  end
elseif direction == "sent" then
  local remote = nd.first(v("notifyd_fax_number"), v("destination_number"), "unknown")
  if done then
    nd.send("fax.sent", account, "fax.sent-" .. uuid, {
      {"remote_number", remote}, {"pages", pages, true}, {"sent_at", at},
    })
  else
    nd.send("fax.failed", account, "fax.failed-" .. uuid, {
      {"remote_number", remote}, {"pages", pages, true}, {"sent_at", at},
      {"reason", nd.first(v("fax_result_text"), v("hangup_cause"))},
    })
  end
else
  freeswitch.consoleLog("err", "notifyd_fax: say received or sent after the script's name\n")
end
