--- The sidebar: one line per session, re-rendered on every change the host pushes.
local compat = require('canopy.compat')
local config = require('canopy.config')
local format = require('canopy.format')
local state = require('canopy.state')

local M = {}
local H = {}

H.ns = vim.api.nvim_create_namespace('canopy_sidebar')
--- Session name per buffer line (1-based; the header line has none).
---@type table<integer, string>
H.line_names = {}
---@type integer|nil
H.buf = nil

---@return integer|nil
function M.buf()
  if H.buf and vim.api.nvim_buf_is_valid(H.buf) then return H.buf end
  return nil
end

--- The sidebar's window in the current tab page, if open.
---@return integer|nil
function M.win()
  local buf = M.buf()
  if not buf then return nil end
  for _, w in ipairs(vim.api.nvim_tabpage_list_wins(0)) do
    if vim.api.nvim_win_get_buf(w) == buf then return w end
  end
  return nil
end

function H.create_buf()
  local buf = vim.api.nvim_create_buf(false, true)
  vim.api.nvim_buf_set_name(buf, 'canopy://sidebar')
  compat.buf_set(buf, 'bufhidden', 'hide')
  compat.buf_set(buf, 'filetype', 'canopy')
  compat.buf_set(buf, 'modifiable', false)
  H.buf = buf
  H.map_keys(buf)
  return buf
end

function H.map_keys(buf)
  local actions = require('canopy.actions')
  local keys = config.options.sidebar.keys
  local function with_name(fn)
    return function()
      local name = M.name_at_cursor()
      if name then fn(name) else vim.notify('canopy: no session on this line', vim.log.levels.WARN) end
    end
  end
  local maps = {
    attach = with_name(actions.attach),
    approve = with_name(actions.approve),
    deny = with_name(function(n) actions.deny(n) end),
    stop = with_name(actions.stop),
    inspect = with_name(actions.inspect),
    new = actions.new_interactive,
    remove = with_name(function(n) actions.remove(n, { confirm = true }) end),
    diff = with_name(actions.diff),
    review = with_name(actions.review),
    help = M.help,
    close = M.close,
  }
  for action, fn in pairs(maps) do
    local lhs = keys[action]
    if lhs then vim.keymap.set('n', lhs, fn, { buffer = buf, nowait = true, silent = true, desc = 'canopy: ' .. action }) end
  end
end

---@return string|nil
function M.name_at_cursor()
  local win = M.win()
  if not win then return nil end
  return H.line_names[vim.api.nvim_win_get_cursor(win)[1]]
end

--- Toggle the sidebar in the current tab page.
function M.toggle()
  if M.win() then M.close() else M.open() end
end

function M.open()
  local win = M.win()
  if win then
    vim.api.nvim_set_current_win(win)
    return
  end
  local buf = M.buf() or H.create_buf()
  local opts = config.options.sidebar
  vim.cmd((opts.position == 'left' and 'topleft' or 'botright') .. ' vertical ' .. opts.width .. 'split')
  win = vim.api.nvim_get_current_win()
  vim.api.nvim_win_set_buf(win, buf)
  for opt, value in pairs({ number = false, relativenumber = false, wrap = false, cursorline = true,
    signcolumn = 'no', winfixwidth = true, spell = false, list = false }) do
    compat.win_set(win, opt, value)
  end
  M.render()
end

function M.close()
  local win = M.win()
  if win then
    if #vim.api.nvim_tabpage_list_wins(0) == 1 then vim.cmd('enew') else vim.api.nvim_win_close(win, true) end
  end
end

--- The host a session runs on (a host from before remote hosts sends none: local).
---@param s canopy.Session
---@return string
function H.host(s)
  return state.present(s.host) and s.host or 'local'
end

--- The last column: the issue, the dev server's URL, the PR, pending comments and the
--- conflict radar's mark.
---@param s canopy.Session
---@return string
function H.extras(s)
  return format.join({ format.issue(s), format.url(s), format.pr(s), format.comments(s), format.radar(s) }, ' ')
end

--- Whether sessions of more than one machine are listed (then a host column shows).
---@param sessions canopy.Session[]
---@return boolean
function H.many_hosts(sessions)
  for _, s in ipairs(sessions) do
    if H.host(s) ~= 'local' then return true end
  end
  return false
end

--- A line per session, padded into columns, with the spans to highlight. With sessions
--- of a remote host, a host column leads and rows go local first, then host by host.
---@return string[] lines, table[] highlights, table<integer, string> names
function M.lines()
  local badges = config.options.badges
  local sessions = state.list()
  local hosts = H.many_hosts(sessions)
  if hosts then
    local function key(s)
      local host = H.host(s)
      return (host == 'local' and '0' or '1') .. host .. '\0' .. s.name
    end
    table.sort(sessions, function(a, b) return key(a) < key(b) end)
  end
  local rows = {}
  local widths = {}
  local total = 0
  for _, s in ipairs(sessions) do
    local cost = s.usage and s.usage.cost_usd
    if state.present(cost) then total = total + cost end
    local row = { s.name, format.state(s), s.agent, s.branch, format.cost(cost), format.context(s), H.extras(s) }
    if hosts then
      -- The host has its own column: the name goes without its `HOST:`.
      local host = H.host(s)
      if s.name:sub(1, #host + 1) == host .. ':' then row[1] = s.name:sub(#host + 2) end
      table.insert(row, 1, host)
    end
    for i = 1, #row - 1 do widths[i] = math.max(widths[i] or 0, vim.fn.strdisplaywidth(row[i])) end
    table.insert(rows, { s = s, cells = row })
  end
  local header
  if state.connected == false then
    header = 'Canopy  (host disconnected; reconnecting)'
  else
    header = ('Canopy  %d session%s  %s'):format(#sessions, #sessions == 1 and '' or 's', format.cost(total))
  end
  local lines, hls, names = { header }, { { 0, 0, -1, 'CanopyHeader' } }, {}
  local groups = { 'CanopyName', 'CanopyDim', 'CanopyDim', 'CanopyDim', 'CanopyCost', 'CanopyDim', 'CanopyIssue' }
  local state_cell = 2
  if hosts then
    table.insert(groups, 1, 'CanopyDim')
    state_cell = 3
  end
  for _, r in ipairs(rows) do
    local badge = badges[r.s.state.kind] or badges.unknown
    local parts, line = {}, badge.icon .. ' '
    table.insert(parts, { 0, #badge.icon, badge.hl })
    for i, cell in ipairs(r.cells) do
      local start = #line
      local pad = widths[i] and (widths[i] - vim.fn.strdisplaywidth(cell)) or 0
      line = line .. cell
      table.insert(parts, { start, #line, i == state_cell and badge.hl or groups[i] })
      if i < #r.cells then line = line .. string.rep(' ', pad + 2) end
    end
    table.insert(lines, (line:gsub('%s+$', '')))
    for _, p in ipairs(parts) do table.insert(hls, { #lines - 1, p[1], p[2], p[3] }) end
    names[#lines] = r.s.name
  end
  if #rows == 0 then table.insert(lines, '  no sessions: n to start one, ? for help') end
  return lines, hls, names
end

--- Redraw the buffer (cheap; called on every pushed change).
function M.render()
  local buf = M.buf()
  if not buf then return end
  local lines, hls, names = M.lines()
  H.line_names = names
  compat.buf_set(buf, 'modifiable', true)
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  compat.buf_set(buf, 'modifiable', false)
  vim.api.nvim_buf_clear_namespace(buf, H.ns, 0, -1)
  for _, h in ipairs(hls) do
    compat.highlight(buf, H.ns, h[4], h[1], h[2], h[3])
  end
  -- For statuslines, tests and benchmarks that want to know the sidebar changed.
  if vim.fn.exists('#User#CanopyRender') == 1 then
    vim.cmd('doautocmd <nomodeline> User CanopyRender')
  end
end

function M.help()
  local k = config.options.sidebar.keys
  local lines = { 'Canopy sidebar keys', '' }
  for _, item in ipairs({
    { 'attach', 'attach (a terminal in a split)' }, { 'approve', 'approve the pending permission' },
    { 'deny', 'deny the pending permission' }, { 'stop', 'stop the agent' },
    { 'inspect', 'inspect: cost, tokens, context, tools, time' },
    { 'new', 'new session (asks name, agent, issue)' },
    { 'remove', 'remove session (asks first)' }, { 'diff', 'diff against the base (quickfix)' },
    { 'review', 'review: the diff in a tab, comments to the agent' },
    { 'help', 'this help' }, { 'close', 'close the sidebar' },
  }) do
    if k[item[1]] then table.insert(lines, ('  %-6s %s'):format(k[item[1]], item[2])) end
  end
  require('canopy.float').show(lines, 'canopy-help')
end

return M
