-- SPDX-License-Identifier: Apache-2.0
-- pandoc filter for the man pages (docs/man/CMakeLists.txt): a docs page becomes part of a man page.
--  * Its own title (a level-1 heading that is not all capitals) is dropped: the page's NAME says it.
--    The man page's sections (NAME, SYNOPSIS, ...) are the upper-case level-1 headings.
--  * Links become their text: relative links to other docs pages mean nothing in man(1).
--  * Tables (all of the form "name | attributes... | meaning" in docs/) become the usual man page list:
--    the name, then "attribute value, ..." and the meaning indented below it. Five columns do not fit
--    a terminal, and the list reads like any other OPTIONS section.
function Header(el)
  if el.level == 1 then
    local text = pandoc.utils.stringify(el)
    if text ~= text:upper() then return {} end
  end
  return el
end

function Link(el)
  return el.content
end

function Table(el)
  local header = {}
  for i, cell in ipairs(el.head.rows[1].cells) do header[i] = pandoc.utils.stringify(cell.contents) end
  local items = {}
  for _, body in ipairs(el.bodies) do
    for _, row in ipairs(body.body) do
      local cells = row.cells
      local term = pandoc.utils.blocks_to_inlines(cells[1].contents)
      local attributes = pandoc.List()
      for i = 2, #cells - 1 do
        local value = pandoc.utils.blocks_to_inlines(cells[i].contents)
        if #value > 0 then
          if #attributes > 0 then attributes:extend({pandoc.Str(","), pandoc.Space()}) end
          attributes:extend({pandoc.Emph({pandoc.Str(header[i])}), pandoc.Space()})
          attributes:extend(value)
        end
      end
      local definition = pandoc.List()
      if #attributes > 0 then definition:insert(pandoc.Para(attributes)) end
      if #cells > 1 then definition:extend(cells[#cells].contents) end
      items[#items + 1] = {term, {definition}}
    end
  end
  return pandoc.DefinitionList(items)
end

-- Ragged right and no hyphenation: option names and paths must not be split or stretched.
function Pandoc(doc)
  table.insert(doc.blocks, 1, pandoc.RawBlock("man", ".ad l\n.nh"))
  return doc
end
