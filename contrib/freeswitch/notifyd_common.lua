-- notifyd_common.lua: what the notifyd hooks of FreeSWITCH share (notifyd_missed.lua,
-- notifyd_voicemail.lua, notifyd_fax.lua): reading channel variables, the settings, and
-- running `notifyd send` in the background so no channel waits on notifyd.
-- docs/integrations.md ("FreeSWITCH and FusionPBX") tells how to install them.
--
-- Settings are FreeSWITCH global variables (vars.xml: <X-PRE-PROCESS cmd="set" .../>):
--   notifyd_url          http://notifyd.internal:8080/v1/webhooks/pbx
--   notifyd_secret_file  /etc/notifyd/pbx.secret (readable by the freeswitch user only)
--   notifyd_send         /opt/notifyd-send/bin/notifyd
--   notifyd_spool        /var/spool/notifyd-send (drained from cron, docs/integrations.md)
--   notifyd_timeout      3 (seconds; the most one send takes before it spools)
--   notifyd_log          /var/log/freeswitch/notifyd-send.log (notifyd send's own line
--                        when it fails; it holds no phone number of ours)

local M = {}

local DEFAULTS = {
  notifyd_url = "http://127.0.0.1:8080/v1/webhooks/pbx",
  notifyd_secret_file = "/etc/notifyd/pbx.secret",
  notifyd_send = "/opt/notifyd-send/bin/notifyd",
  notifyd_spool = "/var/spool/notifyd-send",
  notifyd_timeout = "3",
  notifyd_log = "/var/log/freeswitch/notifyd-send.log",
}

function M.setting(name)
  local value = freeswitch.getGlobalVariable(name)
  if value == nil or value == "" then
    return DEFAULTS[name]
  end
  return value
end

-- A channel variable: from the session when FreeSWITCH gives one (a dialplan `lua`, or
-- api_hangup_hook with session_in_hangup_hook=true), else from `env`, the copy of the
-- channel's variables api_hangup_hook hands a `lua` command. nil when unset or empty.
function M.var(name)
  local value
  if session ~= nil then
    value = session:getVariable(name)
  elseif env ~= nil then
    value = env:getHeader(name)
  end
  if value == nil or value == "" or value == "_undef_" then
    return nil
  end
  return value
end

function M.first(...)
  for i = 1, select("#", ...) do
    local value = select(i, ...)
    if value ~= nil and value ~= "" then
      return value
    end
  end
  return nil
end

function M.number(text)
  return tonumber(text or "") or 0
end

-- FreeSWITCH's *_epoch variables are seconds since 1970; notifyd wants ISO 8601 with a zone.
function M.iso(epoch)
  local seconds = M.number(epoch)
  if seconds <= 0 then
    seconds = os.time()
  end
  return os.date("!%Y-%m-%dT%H:%M:%SZ", seconds)
end

-- The caller withheld the number (CLIR): FreeSWITCH's `privacy` variable, or the SIP
-- Privacy header of RFC 3323 ("id" or "user" hide who called).
function M.withheld(privacy, sip_privacy)
  local p = string.lower(privacy or "")
  if p == "yes" or p == "full" or p == "number" or p == "name,number" then
    return true
  end
  local h = string.lower(sip_privacy or "")
  return h:find("id", 1, true) ~= nil or h:find("user", 1, true) ~= nil
end

local function quote(text)
  return "'" .. string.gsub(tostring(text), "'", "'\\''") .. "'"
end

-- The account notifyd knows the subscriber by: `notifyd_account` where the dialplan or the
-- user's directory entry sets it, else the accountcode, else the domain (a FusionPBX tenant).
function M.account(get)
  return M.first(get("notifyd_account"), get("accountcode"), get("domain_name"))
end

-- Runs `notifyd send` for one event in the background (bg_system: FreeSWITCH starts it in a
-- thread of its own and returns at once), bounded by notifyd_timeout and spooled past it.
-- `id` is the webhook-id: the same call always gives the same one, so a hook that runs twice
-- gives one notice. `data` is a list of {key, value, json}; `attach` a list of {key, path}.
function M.send(event_type, account, id, data, attach)
  local argv = {
    quote(M.setting("notifyd_send")), "send",
    "--url", quote(M.setting("notifyd_url")),
    "--secret-file", quote(M.setting("notifyd_secret_file")),
    "--timeout", quote(M.setting("notifyd_timeout")),
    "--spool", quote(M.setting("notifyd_spool")),
    "--type", quote(event_type), "--account", quote(account), "--id", quote(id),
  }
  for _, field in ipairs(data) do
    local key, value, json = field[1], field[2], field[3]
    if value ~= nil then
      local sep = json and ":=" or "="
      argv[#argv + 1] = "--data " .. quote(key .. sep .. tostring(value))
    end
  end
  for _, file in ipairs(attach or {}) do
    argv[#argv + 1] = "--attach " .. quote(file[1] .. "=" .. file[2])
  end
  local command = table.concat(argv, " ") .. " >/dev/null 2>>" .. quote(M.setting("notifyd_log"))
  freeswitch.API():execute("bg_system", command)
  freeswitch.consoleLog("info", "notifyd: " .. event_type .. " " .. id .. " handed to notifyd send\n")
end

return M
