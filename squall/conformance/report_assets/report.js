// squall report: the copy button and opening the record a diagram label links to. No framework.
(function () {
  function copy(button) {
    var source = document.getElementById(button.getAttribute("data-copy"));
    var text = source.value !== undefined ? source.value : source.textContent;
    var done = function () {
      button.nextElementSibling.textContent = "copied";
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallback(source, done); });
    } else {
      fallback(source, done);
    }
  }
  function fallback(source, done) {
    source.focus();
    source.select();
    if (document.execCommand("copy")) { done(); }
  }
  function openTarget() {
    var id = decodeURIComponent(location.hash.slice(1));
    var node = id && document.getElementById(id);
    document.querySelectorAll(".records details.target").forEach(function (d) {
      d.classList.remove("target");
    });
    for (var n = node; n; n = n.parentElement) {
      if (n.tagName === "DETAILS") { n.open = true; }
    }
    if (node) { node.classList.add("target"); node.scrollIntoView({ block: "center" }); }
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-copy]");
    if (button) { copy(button); }
  });
  window.addEventListener("hashchange", openTarget);
  document.addEventListener("DOMContentLoaded", openTarget);
})();
