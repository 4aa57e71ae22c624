// Live preview for the release compose form: the server renders and sanitises the Markdown
// (the same code the newsroom uses), so what you see is what will be published.
(function () {
  "use strict";
  var body = document.querySelector("textarea[data-preview-url]");
  var target = document.getElementById("live-preview");
  if (!body || !target) { return; }
  var token = document.querySelector("input[name=csrf_token]");
  var timer = null;
  var seq = 0;
  function render() {
    var mine = ++seq;
    var data = new FormData();
    data.append("body_markdown", body.value);
    fetch(body.getAttribute("data-preview-url"), {
      method: "POST",
      body: data,
      credentials: "same-origin",
      headers: { "X-CSRFToken": token ? token.value : "", "Accept": "application/json" }
    }).then(function (r) { return r.ok ? r.json() : null; })
      .then(function (json) {
        // Only the latest answer counts; the HTML was sanitised by the server (nh3).
        if (json && mine === seq) { target.innerHTML = json.html; }
      })
      .catch(function () { /* keep the last preview */ });
  }
  body.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(render, 300);
  });
  if (body.value && !target.innerHTML.trim()) { render(); }
})();
