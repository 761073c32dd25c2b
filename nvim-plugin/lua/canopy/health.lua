--- `:checkhealth canopy`.
local M = {}

function M.check()
  local compat = require('canopy.compat')
  local h = compat.health()
  local canopy = require('canopy')
  canopy.ensure_setup()
  local config = require('canopy.config')
  local rpc = require('canopy.rpc')

  h.start('canopy: Neovim')
  if vim.fn.has('nvim-0.7') == 1 then
    local v = vim.version()
    h.ok(('Neovim %d.%d.%d (the plugin supports 0.7 through 0.11)'):format(v.major, v.minor, v.patch))
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
  elseif compat.uv.fs_stat(socket) then
    h.error('cannot connect: ' .. tostring(err))
  else
    h.warn('no host running (it starts with the first :Canopy command)')
  end
end

return M
