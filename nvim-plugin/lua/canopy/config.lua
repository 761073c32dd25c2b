--- Options: annotated defaults, deep merge with the user's, validation with clear errors.
local M = {}

---@class canopy.Badge
---@field icon string shown before the session name
---@field hl string highlight group (defined with `default = true`, so yours wins)

---@class canopy.SidebarKeys
---@field attach string
---@field approve string
---@field deny string
---@field stop string
---@field inspect string
---@field new string
---@field remove string
---@field diff string
---@field review string
---@field help string
---@field close string

---@class canopy.Config
---@field cmd string the `canopy` executable (a name on PATH or a path)
---@field socket string|nil the host's socket; nil: $CANOPY_SOCKET, $XDG_RUNTIME_DIR/canopy/canopy.sock, /tmp/canopy-UID/canopy.sock ($TMPDIR/canopy-UID/… on macOS)
---@field autostart boolean start a host (through `cmd`) when a command needs one and none runs
---@field default_agent string|nil agent for `:Canopy new NAME` without one; nil: the CLI's default ($SHELL)
---@field agents string[] agent names offered by completion
---@field sidebar { position: "left"|"right", width: integer, keys: canopy.SidebarKeys }
---@field attach { split: string } the Ex command that opens the attach window
---@field badges table<string, canopy.Badge> per state kind, plus `unknown`
---@field notify { permission: boolean, failed: boolean, finished: boolean }
---@field statusline { icons: boolean }
---@field review { width: integer, keys: canopy.ReviewKeys } the review tab: the file list's width, its keys

---@class canopy.ReviewKeys
---@field open string in the file list: show the file under the cursor
---@field comment string in a diff: comment on the line under the cursor
---@field side_by_side string in a diff: the file beside its base version (`diffthis`)
---@field send string send the pending comments to the agent
---@field reload string compute the diff again
---@field close string close the review tab

---@type canopy.Config
M.defaults = {
  cmd = 'canopy',
  socket = nil,
  autostart = true,
  default_agent = nil,
  agents = { 'claude', 'codex', 'gemini', 'opencode' },
  sidebar = {
    position = 'left',
    width = 60,
    keys = {
      attach = '<CR>',
      approve = 'a',
      deny = 'd',
      stop = 'x',
      inspect = 'i',
      new = 'n',
      remove = 'r',
      diff = 'D',
      review = 'R',
      help = '?',
      close = 'q',
    },
  },
  attach = { split = 'botright split' },
  badges = {
    starting = { icon = '…', hl = 'CanopyStarting' },
    idle = { icon = '○', hl = 'CanopyIdle' },
    thinking = { icon = '◐', hl = 'CanopyThinking' },
    tool = { icon = '⚙', hl = 'CanopyTool' },
    waiting_permission = { icon = '?', hl = 'CanopyPermission' },
    waiting_input = { icon = '✎', hl = 'CanopyInput' },
    compacting = { icon = '◌', hl = 'CanopyCompacting' },
    error = { icon = '✗', hl = 'CanopyError' },
    exited = { icon = '■', hl = 'CanopyExited' },
    unknown = { icon = '·', hl = 'CanopyUnknown' },
  },
  notify = { permission = true, failed = true, finished = true },
  statusline = { icons = true },
  review = {
    width = 40,
    keys = { open = '<CR>', comment = 'c', side_by_side = 's', send = 'S', reload = 'R', close = 'q' },
  },
}

--- Links for the highlight groups; `default` so a colorscheme or the user overrides them.
M.highlights = {
  CanopyStarting = 'Comment',
  CanopyIdle = 'Comment',
  CanopyThinking = 'DiagnosticInfo',
  CanopyTool = 'DiagnosticHint',
  CanopyPermission = 'DiagnosticWarn',
  CanopyInput = 'DiagnosticWarn',
  CanopyCompacting = 'DiagnosticInfo',
  CanopyError = 'DiagnosticError',
  CanopyExited = 'NonText',
  CanopyUnknown = 'NonText',
  CanopyName = 'Identifier',
  CanopyDim = 'Comment',
  CanopyCost = 'Number',
  CanopyIssue = 'Special',
  CanopyHeader = 'Title',
  CanopyReviewAdd = 'DiffAdd',
  CanopyReviewDelete = 'DiffDelete',
  CanopyReviewHunk = 'Title',
  CanopyReviewComment = 'DiagnosticInfo',
}

---@type canopy.Config
M.options = vim.deepcopy(M.defaults)

local H = {}

---@param path string
---@param value any
---@param kind string
---@param optional boolean|nil
function H.check(path, value, kind, optional)
  if value == nil and optional then return end
  if type(value) ~= kind then
    error(('canopy.setup: `%s` should be a %s, got %s'):format(path, kind, vim.inspect(value)), 0)
  end
end

--- Unknown keys are errors (a typo would otherwise be ignored silently).
---@param path string the table's path, '' at the top
---@param tbl table
---@param known table the defaults at that path
function H.known(path, tbl, known)
  for k in pairs(tbl) do
    if known[k] == nil and not (path == '' and (k == 'socket' or k == 'default_agent')) then
      error(('canopy.setup: unknown option `%s%s`'):format(path, tostring(k)), 0)
    end
  end
end

---@param c canopy.Config
function H.validate(c)
  H.known('', c, M.defaults)
  H.check('cmd', c.cmd, 'string')
  H.check('socket', c.socket, 'string', true)
  H.check('autostart', c.autostart, 'boolean')
  H.check('default_agent', c.default_agent, 'string', true)
  H.check('agents', c.agents, 'table')
  for i, a in ipairs(c.agents) do H.check(('agents[%d]'):format(i), a, 'string') end
  H.check('sidebar', c.sidebar, 'table')
  H.known('sidebar.', c.sidebar, M.defaults.sidebar)
  if c.sidebar.position ~= 'left' and c.sidebar.position ~= 'right' then
    error(('canopy.setup: `sidebar.position` should be "left" or "right", got %s'):format(vim.inspect(c.sidebar.position)), 0)
  end
  H.check('sidebar.width', c.sidebar.width, 'number')
  if c.sidebar.width < 10 then error('canopy.setup: `sidebar.width` should be at least 10', 0) end
  H.check_keys('sidebar.keys', c.sidebar.keys, M.defaults.sidebar.keys)
  H.check('attach', c.attach, 'table')
  H.known('attach.', c.attach, M.defaults.attach)
  H.check('attach.split', c.attach.split, 'string')
  H.check('badges', c.badges, 'table')
  for kind, b in pairs(c.badges) do
    H.check('badges.' .. kind, b, 'table')
    H.check('badges.' .. kind .. '.icon', b.icon, 'string')
    H.check('badges.' .. kind .. '.hl', b.hl, 'string')
  end
  H.check('notify', c.notify, 'table')
  for k, v in pairs(c.notify) do
    if M.defaults.notify[k] == nil then error(('canopy.setup: unknown option `notify.%s`'):format(k), 0) end
    H.check('notify.' .. k, v, 'boolean')
  end
  H.check('statusline', c.statusline, 'table')
  H.known('statusline.', c.statusline, M.defaults.statusline)
  H.check('statusline.icons', c.statusline.icons, 'boolean')
  H.check('review', c.review, 'table')
  H.known('review.', c.review, M.defaults.review)
  H.check('review.width', c.review.width, 'number')
  H.check_keys('review.keys', c.review.keys, M.defaults.review.keys)
end

--- A table of mappings: known actions, each a key or false (no mapping).
---@param path string
---@param keys table
---@param known table
function H.check_keys(path, keys, known)
  H.check(path, keys, 'table')
  H.known(path .. '.', keys, known)
  for k, v in pairs(keys) do
    if v ~= false then H.check(path .. '.' .. k, v, 'string') end
  end
end

--- Merge `opts` over the defaults, validate, and make the result current.
---@param opts table|nil
---@return canopy.Config
function M.set(opts)
  if opts ~= nil and type(opts) ~= 'table' then
    error('canopy.setup: expected a table of options, got ' .. type(opts), 0)
  end
  local merged = vim.tbl_deep_extend('force', vim.deepcopy(M.defaults), opts or {})
  -- A list replaces the default list; deep-extend would merge it index by index.
  if opts and opts.agents then merged.agents = opts.agents end
  H.validate(merged)
  M.options = merged
  M.define_highlights()
  -- A colorscheme's `:hi clear` drops them: define them again after each one.
  local group = vim.api.nvim_create_augroup('canopy_highlights', { clear = true })
  vim.api.nvim_create_autocmd('ColorScheme', { group = group, callback = M.define_highlights })
  return merged
end

--- Link each group unless it is already set (`default`), so yours win.
function M.define_highlights()
  for group, link in pairs(M.highlights) do
    vim.api.nvim_set_hl(0, group, { link = link, default = true })
  end
end

return M
