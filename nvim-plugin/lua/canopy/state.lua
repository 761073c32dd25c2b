--- The session table as the host last told it, kept current by pushed events, and the
--- listeners (sidebar, notifications, statusline) that follow it.
local M = {}
local H = {}

---@class canopy.Session
---@field name string
---@field host string `local`, or the remote host it runs on (its name is then `HOST:NAME`)
---@field stale_since number|nil set while its host's link is down: the last state seen
---@field agent string
---@field branch string
---@field worktree string
---@field base_commit string
---@field state { kind: string, tool: string|nil, detail: string|nil, since: number, source: string }
---@field usage table
---@field task table|nil
---@field exit_code integer|nil

---@type table<string, canopy.Session>
M.sessions = {}
--- The seq of the last event applied (or of the table read).
M.seq = 0
--- Whether a host connection is up; nil until one was tried.
---@type boolean|nil
M.connected = nil
--- The host's pid, which changes across restarts.
M.host_pid = nil

---@type fun(kind: "changed"|"transition", ...)[]
H.listeners = {}
--- Events held while the table is being read.
---@type table[]|nil
H.held = nil

--- Call `fn` after each change of the table ("changed") and for each session whose
--- state kind changed ("transition", old, new).
---@param fn fun(kind: string, ...)
function M.listen(fn) table.insert(H.listeners, fn) end

function H.emit(kind, ...)
  for _, fn in ipairs(H.listeners) do
    local ok, err = pcall(fn, kind, ...)
    if not ok then vim.notify('canopy: ' .. tostring(err), vim.log.levels.ERROR) end
  end
end

---@param v any
---@return boolean
function M.present(v) return v ~= nil and v ~= vim.NIL end

function M.begin_sync() H.held = {} end

--- Replace the table with a `status` result, then apply held events newer than it.
---@param status table|nil nil: the sync failed; drop what was held
---@param pid integer|nil
function M.end_sync(status, pid)
  local held = H.held or {}
  H.held = nil
  if not status then return end
  M.sessions = {}
  for _, s in ipairs(status.sessions or {}) do M.sessions[s.name] = s end
  M.seq = status.seq or 0
  if pid then M.host_pid = pid end
  M.connected = true
  for _, ev in ipairs(held) do
    if ev.seq > M.seq then H.apply(ev) end
  end
  H.emit('changed')
end

---@param up boolean
function M.set_connected(up)
  M.connected = up
  H.emit('changed')
end

--- Entry point for the host's pushes (see `canopy.rpc` PUSH).
---@param ev { seq: number, kind: string, session: canopy.Session|nil }
function M.on_event(ev)
  if H.held then
    table.insert(H.held, ev)
    return
  end
  if ev.kind == 'resync' or (M.seq > 0 and ev.seq > M.seq + 1) then
    -- Missed events: re-read the table (outside this notification's handler).
    vim.schedule(function() require('canopy.rpc').resync() end)
    return
  end
  if ev.seq <= M.seq then return end
  H.apply(ev)
  H.emit('changed')
end

function H.apply(ev)
  M.seq = ev.seq
  local s = ev.session
  if not M.present(s) then return end
  local old = M.sessions[s.name]
  if ev.kind == 'session_removed' then
    M.sessions[s.name] = nil
    return
  end
  M.sessions[s.name] = s
  local was = old and old.state.kind or nil
  if was ~= s.state.kind then H.emit('transition', s, was) end
end

--- Sessions sorted by name.
---@return canopy.Session[]
function M.list()
  local out = {}
  for _, s in pairs(M.sessions) do table.insert(out, s) end
  table.sort(out, function(a, b) return a.name < b.name end)
  return out
end

---@return string[]
function M.names()
  local out = {}
  for _, s in ipairs(M.list()) do table.insert(out, s.name) end
  return out
end

return M
