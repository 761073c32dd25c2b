--- A short summary for statuslines, rebuilt when the table changes, so calling it on
--- every redraw only returns a string.
local config = require('canopy.config')
local format = require('canopy.format')
local state = require('canopy.state')

local M = {}

M.cached = ''

--- States in the order the summary lists them: those that need you first.
M.order = { 'waiting_permission', 'waiting_input', 'error', 'thinking', 'tool', 'compacting', 'starting', 'idle', 'exited' }
M.short = {
  waiting_permission = 'perm', waiting_input = 'input', error = 'err', thinking = 'busy',
  tool = 'tool', compacting = 'compact', starting = 'start', idle = 'idle', exited = 'done',
}

function M.rebuild()
  if state.connected == false then
    M.cached = 'canopy: disconnected'
    return
  end
  local counts, total, unknown, n = {}, 0, false, 0
  for _, s in pairs(state.sessions) do
    n = n + 1
    counts[s.state.kind] = (counts[s.state.kind] or 0) + 1
    local cost = s.usage and s.usage.cost_usd
    if state.present(cost) then total = total + cost else unknown = true end
  end
  if n == 0 then
    M.cached = ''
    return
  end
  local parts, badges = {}, config.options.badges
  local icons = config.options.statusline.icons
  for _, kind in ipairs(M.order) do
    if counts[kind] then
      local label = icons and (badges[kind] or badges.unknown).icon or M.short[kind]
      table.insert(parts, label .. counts[kind])
      counts[kind] = nil
    end
  end
  local other = 0
  for _, c in pairs(counts) do other = other + c end
  if other > 0 then table.insert(parts, '·' .. other) end
  table.insert(parts, format.cost(total) .. (unknown and '+' or ''))
  M.cached = table.concat(parts, ' ')
end

return M
