// Progressive enhancement only: a "copy" button on each code snippet. The
// page works without it (the snippet can be selected by hand).
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  if (!navigator.clipboard) return;
  document.querySelectorAll("[data-copy]").forEach(function (block) {
    var code = block.querySelector("code");
    if (!code) return;
    var button = document.createElement("button");
    button.type = "button";
    button.textContent = block.dataset.copy;
    button.setAttribute("aria-label", block.dataset.copy + " : " + (block.dataset.copyLabel || ""));
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(code.textContent).then(function () {
        button.textContent = block.dataset.copied;
        setTimeout(function () { button.textContent = block.dataset.copy; }, 2000);
      });
    });
    block.appendChild(button);
  });
});
