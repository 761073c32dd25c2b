--- `vim.notify` when a session starts waiting for permission, fails or finishes; each
--- kind can be turned off in `opts.notify`.
local config = require('canopy.config')
local state = require('canopy.state')

local M = {}

local BUSY = { thinking = true, tool = true, compacting = true }

--- Which notification a state change is, if any.
---@param s canopy.Session
---@param was string|nil the previous kind (nil: a new session)
---@return "permission"|"failed"|"finished"|nil kind, string|nil message, integer|nil level
function M.classify(s, was)
  local kind = s.state.kind
  local present = state.present
  if kind == 'waiting_permission' then
    local what = present(s.state.tool) and s.state.tool or 'a tool'
    if present(s.state.detail) then what = what .. ': ' .. s.state.detail end
    return 'permission', ('%s wants to run %s'):format(s.name, what), vim.log.levels.WARN
  elseif kind == 'error' then
    return 'failed', ('%s failed: %s'):format(s.name, present(s.state.detail) and s.state.detail or 'error'), vim.log.levels.ERROR
  elseif kind == 'exited' and was and was ~= 'exited' then
    if present(s.exit_code) and s.exit_code == 0 then
      return 'finished', s.name .. ' exited', vim.log.levels.INFO
    end
    return 'failed', ('%s exited: %s'):format(s.name, present(s.state.detail) and s.state.detail or '?'), vim.log.levels.WARN
  elseif kind == 'idle' and was and BUSY[was] then
    return 'finished', s.name .. ' finished its turn', vim.log.levels.INFO
  end
  return nil
end

function M.on_transition(s, was)
  local kind, msg, level = M.classify(s, was)
  if kind and config.options.notify[kind] then
    -- Not inside the host's notification handler: a notify UI may redraw or prompt.
    vim.schedule(function() vim.notify('canopy: ' .. msg, level, { title = 'Canopy' }) end)
  end
end

return M
