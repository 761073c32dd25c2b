--- The connection to the host: connect (starting a host when asked), subscribe with
--- `nvim_exec_lua` delivery so the host pushes events into `canopy.state`, notice when
--- the host goes away and reconnect when it is back.
---
--- Nothing polls while connected: a second, silent libuv connection to the socket reads
--- only the EOF that comes when the host exits (Neovim 0.7 reports no close of an RPC
--- channel). Only after a disconnect does a backoff timer (and a watch on the socket's
--- directory) try again.
local config = require('canopy.config')
local state = require('canopy.state')

local uv = require('canopy.compat').uv

local M = {}
local H = {}

--- The RPC channel id, or nil when not connected.
---@type integer|nil
M.chan = nil

--- The code the host runs for every event; `...` is the event.
M.PUSH = "return require('canopy.state').on_event(...)"

H.retry = { timer = nil, watch = nil, delay = 100, wanted = false }
---@type userdata|nil the silent connection that reports the host's exit
H.eof_pipe = nil

---@return integer
function H.uid()
  if uv.getuid then return uv.getuid() end
  return tonumber((vim.fn.system({ 'id', '-u' }):gsub('%s+', ''))) or 0
end

--- The socket path, by the rules of docs/protocol.md §1.
---@return string
function M.socket()
  if config.options.socket then return config.options.socket end
  local s = vim.env.CANOPY_SOCKET
  if s and s ~= '' then return s end
  local rt = vim.env.XDG_RUNTIME_DIR
  if rt and rt ~= '' then return rt .. '/canopy/canopy.sock' end
  -- macOS has no XDG_RUNTIME_DIR; the host uses the user's private $TMPDIR there.
  local tmp = vim.env.TMPDIR
  if vim.fn.has('mac') == 1 and tmp and tmp ~= '' then
    return ('%s/canopy-%d/canopy.sock'):format((tmp:gsub('/+$', '')), H.uid())
  end
  return ('/tmp/canopy-%d/canopy.sock'):format(H.uid())
end

--- Start a host through the CLI (every CLI command but `host` starts one).
---@return boolean ok, string|nil err
function M.start_host()
  local out = vim.fn.system({ config.options.cmd, 'status', '--json' })
  if vim.v.shell_error ~= 0 then return false, vim.trim(out) end
  return true
end

---@return boolean
function M.connected() return M.chan ~= nil end

--- Connect (and resync) unless connected. With `autostart`, start a host when none runs.
---@param autostart boolean|nil
---@return boolean ok, string|nil err
function M.ensure(autostart)
  if M.chan then return true end
  local ok, err = H.connect()
  if not ok and autostart and config.options.autostart then
    local started, serr = M.start_host()
    if not started then return false, serr end
    ok, err = H.connect()
  end
  return ok, err
end

---@return boolean ok, string|nil err
function H.connect()
  local path = M.socket()
  local ok, ch = pcall(vim.fn.sockconnect, 'pipe', path, { rpc = true })
  if not ok or ch == 0 then return false, 'no Canopy host at ' .. path end
  local hok, hello = pcall(vim.rpcrequest, ch, 'hello', { client = 'canopy.nvim', version = '0.1.0' })
  if not hok or type(hello) ~= 'table' then
    pcall(vim.fn.chanclose, ch)
    return false, 'the host did not answer hello: ' .. tostring(hello)
  end
  if hello.protocol ~= 1 then
    pcall(vim.fn.chanclose, ch)
    return false, ('unsupported Canopy protocol %s (this plugin speaks 1)'):format(tostring(hello.protocol))
  end
  -- Subscribe before reading the table; events that arrive meanwhile are held by
  -- state and those the table already reflects (seq <= status.seq) are dropped.
  state.begin_sync()
  local sok, serr = pcall(vim.rpcrequest, ch, 'subscribe', { nvim_exec_lua = M.PUSH })
  local tok, status = pcall(vim.rpcrequest, ch, 'status', {})
  if not sok or not tok then
    pcall(vim.fn.chanclose, ch)
    state.end_sync(nil)
    return false, 'subscribe/status failed: ' .. tostring(sok and status or serr)
  end
  M.chan = ch
  H.stop_retry()
  H.watch_eof(path)
  state.end_sync(status, hello.pid)
  return true
end

--- Re-read the whole table (after a `resync` event or a gap in seq).
function M.resync()
  if not M.chan then return end
  local ok, status = pcall(vim.rpcrequest, M.chan, 'status', {})
  if ok then
    state.begin_sync()
    state.end_sync(status)
  else
    M.lost()
  end
end

--- Open a silent connection whose EOF tells that the host has gone.
---@param path string
function H.watch_eof(path)
  H.close_eof()
  local pipe = uv.new_pipe(false)
  H.eof_pipe = pipe
  pipe:connect(path, function(err)
    if err then
      vim.schedule(M.lost)
      return
    end
    pipe:read_start(function(rerr, data)
      -- The host never writes to a connection that sent nothing; any callback without
      -- data is the end.
      if rerr or not data then vim.schedule(M.lost) end
    end)
  end)
end

function H.close_eof()
  local pipe = H.eof_pipe
  H.eof_pipe = nil
  if pipe and not pipe:is_closing() then
    pipe:read_stop()
    pipe:close()
  end
end

--- The host went away: forget the channel and try again until it is back.
function M.lost()
  if not M.chan then return end
  local ch = M.chan
  M.chan = nil
  H.close_eof()
  pcall(vim.fn.chanclose, ch)
  state.set_connected(false)
  H.retry.delay = 100
  H.schedule_retry()
  H.watch_socket_dir()
end

function H.schedule_retry()
  if not H.retry.timer then H.retry.timer = uv.new_timer() end
  H.retry.timer:stop()
  H.retry.timer:start(H.retry.delay, 0, vim.schedule_wrap(H.try_again))
  H.retry.delay = math.min(H.retry.delay * 2, 2000)
end

function H.try_again()
  if M.chan then return end
  if not H.connect() then H.schedule_retry() end
end

--- A new host binds its socket: try at once rather than at the next backoff step.
function H.watch_socket_dir()
  if H.retry.watch then return end
  local dir = vim.fn.fnamemodify(M.socket(), ':h')
  if vim.fn.isdirectory(dir) == 0 then return end
  local w = uv.new_fs_event()
  if not w then return end
  H.retry.watch = w
  w:start(dir, {}, vim.schedule_wrap(function(_, fname)
    if not M.chan and fname == vim.fn.fnamemodify(M.socket(), ':t') then H.try_again() end
  end))
end

function H.stop_retry()
  if H.retry.timer then H.retry.timer:stop() end
  if H.retry.watch then
    H.retry.watch:stop()
    H.retry.watch:close()
    H.retry.watch = nil
  end
end

--- A request to the host. Connects first (starting a host if allowed).
---@param method string
---@param params table|nil
---@return boolean ok, any result_or_error
function M.request(method, params)
  local ok, err = M.ensure(true)
  if not ok then return false, err end
  local rok, res = pcall(vim.rpcrequest, M.chan, method, params or vim.empty_dict())
  if not rok then
    -- A closed channel fails every request; treat it as a lost host.
    if tostring(res):find('Invalid channel') or tostring(res):find('closed') then M.lost() end
    return false, H.clean_error(res)
  end
  return true, res
end

--- Neovim wraps errors as "Vim:Error invoking 'm' on channel 3:\n<message>".
---@param err any
---@return string
function H.clean_error(err)
  local s = tostring(err)
  local msg = s:match("on channel %d+:%s*(.*)$")
  return msg or s
end

return M
