// MathJax 3 for the site. Two kinds of element are typeset, nothing else:
//   * Markdown pages: pymdownx.arithmatex (generic mode) puts each formula, delimited by \( \) or
//     \[ \], in an element of class "arithmatex".
//   * Notebook pages (mkdocs-jupyter): a markdown cell is an element of class "jp-RenderedMarkdown"
//     whose paragraphs keep the notebook's $ and $$ delimiters.
// MathJax skips the subtree of an element whose class matches ignoreHtmlClass unless a descendant's
// class matches processHtmlClass, and unclassed descendants inherit their parent's state; so the page
// body (class "md-container") is ignored and only the two classes above switch typesetting back on.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: "md-container",
    processHtmlClass: "arithmatex|jp-RenderedMarkdown",
  },
};

// Material's instant navigation swaps pages without reloading: typeset each new page.
if (typeof document$ !== "undefined") {
  document$.subscribe(() => {
    if (window.MathJax && MathJax.typesetPromise) {
      MathJax.startup.output.clearCache();
      MathJax.typesetClear();
      MathJax.texReset();
      MathJax.typesetPromise();
    }
  });
}
