--- `:Canopy [subcommand] ...`: dispatch and completion.
local M = {}

---@class canopy.Subcommand
---@field run fun(args: string[])
---@field usage string
---@field complete ("session"|"agent"|"none")[] what each argument completes to

local function actions() return require('canopy.actions') end

---@param args string[]
---@param n integer
---@param usage string
---@return boolean
local function need(args, n, usage)
  if #args < n then
    vim.notify('canopy: usage: :Canopy ' .. usage, vim.log.levels.ERROR)
    return false
  end
  return true
end

---@type table<string, canopy.Subcommand>
M.subcommands = {
  toggle = { usage = 'toggle', complete = {}, run = function() require('canopy.sidebar').toggle() end },
  new = {
    usage = 'new {name} [agent] [issue]',
    complete = { 'none', 'agent', 'none' },
    run = function(a) if need(a, 1, 'new {name} [agent] [issue]') then actions().new(a[1], a[2], a[3]) end end,
  },
  attach = { usage = 'attach {name}', complete = { 'session' }, run = function(a) if need(a, 1, 'attach {name}') then actions().attach(a[1]) end end },
  send = {
    usage = 'send {name} {text}',
    complete = { 'session' },
    run = function(a)
      if need(a, 2, 'send {name} {text}') then actions().send(a[1], table.concat(a, ' ', 2)) end
    end,
  },
  stop = { usage = 'stop {name}', complete = { 'session' }, run = function(a) if need(a, 1, 'stop {name}') then actions().stop(a[1]) end end },
  rm = {
    usage = 'rm {name} [--force]',
    complete = { 'session' },
    run = function(a)
      if need(a, 1, 'rm {name} [--force]') then actions().remove(a[1], { force = a[2] == '--force' }) end
    end,
  },
  approve = { usage = 'approve {name}', complete = { 'session' }, run = function(a) if need(a, 1, 'approve {name}') then actions().approve(a[1]) end end },
  deny = {
    usage = 'deny {name} [reason]',
    complete = { 'session' },
    run = function(a) if need(a, 1, 'deny {name} [reason]') then actions().deny(a[1], table.concat(a, ' ', 2)) end end,
  },
  inspect = { usage = 'inspect {name}', complete = { 'session' }, run = function(a) if need(a, 1, 'inspect {name}') then actions().inspect(a[1]) end end },
  review = { usage = 'review [name]', complete = { 'session' }, run = function(a) actions().review(a[1]) end },
  diff = { usage = 'diff {name}', complete = { 'session' }, run = function(a) if need(a, 1, 'diff {name}') then actions().diff(a[1]) end end },
  explain = { usage = 'explain {name}', complete = { 'session' }, run = function(a) if need(a, 1, 'explain {name}') then actions().explain(a[1]) end end },
  capture = { usage = 'capture {name}', complete = { 'session' }, run = function(a) if need(a, 1, 'capture {name}') then actions().capture(a[1]) end end },
}

--- Run `:Canopy` with its arguments (from `nvim_create_user_command`'s `fargs`).
---@param fargs string[]
function M.run(fargs)
  local canopy = require('canopy')
  canopy.ensure_setup()
  local name = fargs[1] or 'toggle'
  local sub = M.subcommands[name]
  if not sub then
    vim.notify(('canopy: unknown subcommand %q (try :Canopy <Tab>)'):format(name), vim.log.levels.ERROR)
    return
  end
  local ok, err = require('canopy.rpc').ensure(true)
  if not ok and name ~= 'toggle' then
    vim.notify('canopy: ' .. tostring(err), vim.log.levels.ERROR)
    return
  end
  sub.run(vim.list_slice(fargs, 2))
end

---@param arglead string
---@param cmdline string
---@return string[]
function M.complete(arglead, cmdline)
  local words = vim.split(cmdline, '%s+', { trimempty = false })
  -- words[1] is "Canopy"; the word being completed is the last one.
  local pos = #words - 1
  local function filter(list)
    return vim.tbl_filter(function(x) return vim.startswith(x, arglead) end, list)
  end
  if pos <= 1 then
    local names = vim.tbl_keys(M.subcommands)
    table.sort(names)
    return filter(names)
  end
  local sub = M.subcommands[words[2]]
  local kind = sub and sub.complete[pos - 1]
  if kind == 'session' then
    require('canopy').ensure_setup()
    require('canopy.rpc').ensure(false)
    return filter(require('canopy.state').names())
  elseif kind == 'agent' then
    return filter(require('canopy.config').options.agents)
  end
  return {}
end

return M
