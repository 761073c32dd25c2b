--- `:checkhealth canopy`.
local M = {}

--- The health API: `vim.health` (0.10+: start/ok/warn/error; 0.8–0.9: report_*) or the
--- `health` module of 0.7.
---@return { start: fun(s: string), ok: fun(s: string), warn: fun(s: string), error: fun(s: string), info: fun(s: string) }
local function reporter()
  local h = vim.health
  if h and h.start then return h end
  h = h or require('health')
  return { start = h.report_start, ok = h.report_ok, warn = h.report_warn, error = h.report_error, info = h.report_info }
end

function M.check()
  local h = reporter()
  local canopy = require('canopy')
  canopy.ensure_setup()
  local config = require('canopy.config')
  local rpc = require('canopy.rpc')

  h.start('canopy: Neovim')
  if vim.fn.has('nvim-0.7') == 1 then
    h.ok('Neovim ' .. tostring(vim.version().major) .. '.' .. tostring(vim.version().minor))
  else
    h.error('Neovim 0.7 or newer is needed')
  end

  h.start('canopy: the canopy command')
  local cmd = config.options.cmd
  if vim.fn.executable(cmd) == 1 then
    local version = vim.trim(vim.fn.system({ cmd, '--version' }))
    h.ok(('`%s` found: %s'):format(vim.fn.exepath(cmd), version))
  else
    h.error(('`%s` is not executable: install Canopy (`cargo install --locked --path host`) or set `cmd` in setup()'):format(cmd))
  end

  h.start('canopy: host')
  local socket = rpc.socket()
  h.info('socket: ' .. socket)
  local ok, err = rpc.ensure(false)
  if ok then
    h.ok(('connected; %d session(s), host pid %s'):format(#require('canopy.state').list(), tostring(require('canopy.state').host_pid)))
  elseif vim.loop.fs_stat(socket) then
    h.error('cannot connect: ' .. tostring(err))
  else
    h.warn('no host running (it starts with the first :Canopy command)')
  end
end

return M
