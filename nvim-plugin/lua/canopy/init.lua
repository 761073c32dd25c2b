--- Canopy for Neovim: a live sidebar of the agents the Canopy host supervises, commands
--- to steer them, notifications and a statusline summary. See `:help canopy`.
local M = {}
local H = { did_setup = false }

--- Configure the plugin (optional: `:Canopy` sets up with the defaults).
---@param opts canopy.Config|table|nil
function M.setup(opts)
  require('canopy.config').set(opts)
  if not H.did_setup then
    H.did_setup = true
    local state = require('canopy.state')
    local sidebar = require('canopy.sidebar')
    local statusline = require('canopy.statusline')
    local notify = require('canopy.notify')
    state.listen(function(kind, ...)
      if kind == 'changed' then
        statusline.rebuild()
        sidebar.render()
      elseif kind == 'transition' then
        notify.on_transition(...)
      end
    end)
  end
  -- Connect if a host is already up, so the statusline has data; never start one here.
  vim.schedule(function() require('canopy.rpc').ensure(false) end)
end

--- Set up with the defaults unless `setup` was called.
function M.ensure_setup()
  if not H.did_setup then M.setup({}) end
end

--- Toggle the sidebar.
function M.toggle()
  M.ensure_setup()
  require('canopy.commands').run({ 'toggle' })
end

--- A short summary (counts per state, total cost), cheap enough for every redraw.
---@return string
function M.statusline()
  if not H.did_setup and not H.setup_queued then
    -- Loaded by a statusline before `:Canopy` (e.g. lazy.nvim's `cmd`): set up with the
    -- defaults once, outside the redraw, so the summary follows a running host.
    H.setup_queued = true
    vim.schedule(M.ensure_setup)
  end
  return require('canopy.statusline').cached
end

--- The sessions as the host last reported them, sorted by name.
---@return canopy.Session[]
function M.sessions()
  return require('canopy.state').list()
end

return M
