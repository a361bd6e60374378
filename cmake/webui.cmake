# The chat page of `m40-llm serve` (src/server/webui.c): the files under
# src/server/webui/ and Debian's marked (libjs-marked) and highlight.js
# (libjs-highlight.js) become byte arrays in a generated C source of the
# library, so the binary serves the page without files or network at run
# time and the build needs no node. The renderers are required: a build
# without them (answers shown as plain text) must be asked for with
# -DM40LLM_WEBUI_NO_VENDOR=ON. Include after add_library(m40llm).
option(M40LLM_WEBUI_NO_VENDOR
       "Build the web page without marked and highlight.js (answers as plain text)" OFF)

set(_webui_dir ${CMAKE_SOURCE_DIR}/src/server/webui)
# name served under /webui/ (index.html is served at /) | file; webui.c
# gives the content type from the name's extension
set(_webui_entries
    "index.html|${_webui_dir}/index.html"
    "app.js|${_webui_dir}/app.js"
    "render.js|${_webui_dir}/render.js"
    "style.css|${_webui_dir}/style.css"
    "icon.svg|${_webui_dir}/icon.svg")

if(NOT M40LLM_WEBUI_NO_VENDOR)
  find_file(M40LLM_MARKED_JS marked.min.js PATHS /usr/share/javascript/marked NO_DEFAULT_PATH
            DOC "marked.min.js (Debian: libjs-marked)")
  find_file(M40LLM_HIGHLIGHT_JS highlight.min.js PATHS /usr/share/javascript/highlight.js
            NO_DEFAULT_PATH DOC "highlight.min.js (Debian: libjs-highlight.js)")
  foreach(_v M40LLM_MARKED_JS M40LLM_HIGHLIGHT_JS)
    if(NOT EXISTS "${${_v}}")
      message(FATAL_ERROR
        "the web page needs Debian's libjs-marked and libjs-highlight.js (${_v} not found): "
        "run scripts/setup.sh (or apt-get install libjs-marked libjs-highlight.js), pass "
        "-D${_v}=PATH, or configure with -DM40LLM_WEBUI_NO_VENDOR=ON for a page without "
        "markdown rendering")
    endif()
  endforeach()
  list(APPEND _webui_entries
       "marked.min.js|${M40LLM_MARKED_JS}"
       "highlight.min.js|${M40LLM_HIGHLIGHT_JS}")
endif()

set(_webui_manifest ${CMAKE_BINARY_DIR}/webui_manifest.txt)
set(_webui_out ${CMAKE_BINARY_DIR}/webui_assets.c)
set(_webui_deps "")
set(_webui_text "")
foreach(_e ${_webui_entries})
  string(REPLACE "|" ";" _f "${_e}")
  list(GET _f 1 _path)
  list(APPEND _webui_deps ${_path})
  string(APPEND _webui_text "${_e}\n")
endforeach()
file(CONFIGURE OUTPUT ${_webui_manifest} CONTENT "${_webui_text}")
add_custom_command(
  OUTPUT ${_webui_out}
  COMMAND ${CMAKE_COMMAND} -DMANIFEST=${_webui_manifest} -DOUT=${_webui_out}
          -P ${CMAKE_SOURCE_DIR}/cmake/webui_embed.cmake
  DEPENDS ${_webui_deps} ${_webui_manifest} ${CMAKE_SOURCE_DIR}/cmake/webui_embed.cmake
  COMMENT "Embedding the web page (src/server/webui)"
  VERBATIM)
target_sources(m40llm PRIVATE ${_webui_out})
