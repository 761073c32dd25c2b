-- Defines :Canopy only; everything else loads on first use.
if vim.g.loaded_canopy then return end
vim.g.loaded_canopy = true

vim.api.nvim_create_user_command('Canopy', function(cmd)
  require('canopy.commands').run(cmd.fargs)
end, {
  nargs = '*',
  desc = 'Canopy: toggle the sidebar, or a subcommand (new, attach, send, stop, rm, approve, deny, inspect, diff, review, explain, capture)',
  complete = function(arglead, cmdline) return require('canopy.commands').complete(arglead, cmdline) end,
})
