-- A stand-in for what FreeSWITCH's mod_lua gives a script, for tests/integration/
-- test_freeswitch.py: the `freeswitch` table (getGlobalVariable from vars.xml, consoleLog,
-- API():execute), `argv`, and either `env` (the channel's variables, as api_hangup_hook hands
-- them to a `lua` command) or `event` (the headers of an event hook's event).
-- Usage: lua5.4 freeswitch_standin.lua GLOBALS HEADERS env|event SCRIPT [ARG...]
-- GLOBALS and HEADERS are files of NAME=VALUE lines. It returns only what FreeSWITCH would:
-- bg_system runs its command through /bin/sh (here to the end, so the test knows when the
-- send is over) and answers "+OK".

local function read_pairs(path)
  local pairs_read = {}
  for line in io.lines(path) do
    local name, value = line:match("^([^=]+)=(.*)$")
    if name then
      pairs_read[name] = value
    end
  end
  return pairs_read
end

local globals = read_pairs(arg[1])
local headers = read_pairs(arg[2])
local holder = {
  getHeader = function(_, name)
    return headers[name]
  end,
}

freeswitch = {
  getGlobalVariable = function(name)
    return globals[name]
  end,
  consoleLog = function(level, text)
    io.stderr:write("[" .. level .. "] " .. text)
  end,
  API = function()
    return {
      execute = function(_, command, args)
        assert(command == "bg_system", "the hooks call bg_system only, not " .. command)
        os.execute(args)
        return "+OK\n"
      end,
    }
  end,
}

if arg[3] == "env" then
  env = holder
else
  event = holder
end
argv = {[0] = arg[4]}
for i = 5, #arg do
  argv[#argv + 1] = arg[i]
end
dofile(arg[4])
