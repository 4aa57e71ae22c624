// The compose editor: a formatting toolbar over the plain Markdown textarea, paste from Word
// and Google Docs converted to our Markdown subset (turndown, vendored), and live previews of
// the whole newsroom page and of the mail. The textarea stays the source of truth: Markdown can
// always be typed by hand, and without JavaScript the form works as before.
(function () {
  "use strict";
  var body = document.getElementById("body_markdown");
  var form = body && body.form;
  if (!body || !form) { return; }

  // -- toolbar ------------------------------------------------------------------------------
  var toolbar = document.querySelector(".md-toolbar");

  function changed() {
    body.dispatchEvent(new Event("input", { bubbles: true }));
  }

  function wrap(before, after, placeholder) {
    var start = body.selectionStart, end = body.selectionEnd;
    var text = body.value.slice(start, end) || placeholder;
    body.setRangeText(before + text + after, start, end, "end");
    body.setSelectionRange(start + before.length, start + before.length + text.length);
    body.focus();
    changed();
  }

  function prefixLines(prefix, numbered) {
    var value = body.value;
    var start = value.lastIndexOf("\n", body.selectionStart - 1) + 1;
    var endAt = value.indexOf("\n", body.selectionEnd);
    var end = endAt === -1 ? value.length : endAt;
    var lines = value.slice(start, end).split("\n").map(function (line, i) {
      var bare = line.replace(/^(#{1,6} |> |- |\d+\. )/, "");
      return (numbered ? (i + 1) + ". " : prefix) + bare;
    });
    body.setRangeText(lines.join("\n"), start, end, "select");
    body.focus();
    changed();
  }

  var actions = {
    bold: function () { wrap("**", "**", "bold text"); },
    italic: function () { wrap("*", "*", "italic text"); },
    h2: function () { prefixLines("## "); },
    h3: function () { prefixLines("### "); },
    quote: function () { prefixLines("> "); },
    ul: function () { prefixLines("- "); },
    ol: function () { prefixLines("", true); },
    link: function () {
      var url = window.prompt("Link to (https://…)", "https://");
      if (url && /^(https?:\/\/|mailto:)/i.test(url)) { wrap("[", "](" + url + ")", "link text"); }
    }
  };

  if (toolbar) {
    toolbar.hidden = false;
    toolbar.addEventListener("click", function (event) {
      var button = event.target.closest("button[data-md]");
      if (button && actions[button.getAttribute("data-md")]) {
        actions[button.getAttribute("data-md")]();
      }
    });
    body.addEventListener("keydown", function (event) {
      if (!(event.ctrlKey || event.metaKey) || event.altKey) { return; }
      var key = event.key.toLowerCase();
      var name = { b: "bold", i: "italic", k: "link" }[key];
      if (name) { event.preventDefault(); actions[name](); }
    });
  }

  // -- paste from Word / Google Docs ----------------------------------------------------------
  // Word and Docs put styled HTML on the clipboard. We keep what our Markdown subset can say
  // (headings, bold, italic, links, lists, quotes, line breaks) and drop the rest: fonts,
  // colours, Word's <o:p>, Docs' wrapper <b style="font-weight:normal">, images, comments.
  function cleanHtml(html) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    doc.querySelectorAll("style, script, meta, link, title, img, svg, o\\:p, xml").forEach(function (n) { n.remove(); });
    doc.querySelectorAll("b[id^='docs-internal-guid']").forEach(function (b) {
      b.replaceWith.apply(b, Array.prototype.slice.call(b.childNodes));
    });
    // Docs marks bold and italic with inline styles on spans.
    doc.querySelectorAll("span[style]").forEach(function (span) {
      var style = span.getAttribute("style") || "";
      var node = span;
      if (/font-weight:\s*(bold|[6-9]00)/i.test(style)) {
        var strong = doc.createElement("strong");
        strong.append.apply(strong, Array.prototype.slice.call(node.childNodes));
        node.replaceChildren(strong);
      }
      if (/font-style:\s*italic/i.test(style)) {
        var em = doc.createElement("em");
        em.append.apply(em, Array.prototype.slice.call(node.childNodes));
        node.replaceChildren(em);
      }
    });
    // Word's list paragraphs (class MsoListParagraph) become list items.
    doc.querySelectorAll("p[class^='MsoListParagraph']").forEach(function (p) {
      var li = doc.createElement("li");
      li.textContent = p.textContent.replace(/^[\s\u00b7\u2022o§-]+\s*|^\d+[.)]\s*/, "");
      p.replaceWith(li);
    });
    doc.querySelectorAll("li").forEach(function (li) {
      if (!li.parentElement || !/^(UL|OL)$/.test(li.parentElement.tagName)) {
        var list = doc.createElement("ul");
        li.before(list);
        list.append(li);
        while (list.nextElementSibling && list.nextElementSibling.tagName === "LI") {
          list.append(list.nextElementSibling);
        }
      }
    });
    // Our newsroom uses h2 and h3 under the release title.
    doc.querySelectorAll("h1").forEach(function (h) {
      var h2 = doc.createElement("h2");
      h2.append.apply(h2, Array.prototype.slice.call(h.childNodes));
      h.replaceWith(h2);
    });
    doc.querySelectorAll("a").forEach(function (a) {
      var href = a.getAttribute("href") || "";
      if (!/^(https?:|mailto:)/i.test(href)) {
        a.replaceWith.apply(a, Array.prototype.slice.call(a.childNodes));
      }
    });
    return doc.body.innerHTML;
  }

  function toMarkdown(html) {
    var service = new window.TurndownService({
      headingStyle: "atx",
      bulletListMarker: "-",
      emDelimiter: "*",
      strongDelimiter: "**",
      codeBlockStyle: "fenced"
    });
    // Anything without a Markdown form keeps its text only.
    service.remove(["font", "colgroup"]);
    service.keep([]);
    return service.turndown(cleanHtml(html))
      .replace(/\u00a0/g, " ")
      .replace(/^(\s*)(-|\d+\.)\s{2,}/gm, "$1$2 ")  // "-   item" -> "- item"
      .replace(/\n{3,}/g, "\n\n")
      .trim();
  }

  body.addEventListener("paste", function (event) {
    var data = event.clipboardData;
    if (!data || !window.TurndownService) { return; }
    var html = data.getData("text/html");
    if (!html) { return; }  // plain text pastes as it is
    event.preventDefault();
    body.setRangeText(toMarkdown(html), body.selectionStart, body.selectionEnd, "end");
    changed();
  });
  window.distributorComposeToMarkdown = toMarkdown;  // for the browser tests

  // -- previews: body, whole newsroom page, whole mail --------------------------------------
  var tabs = document.querySelector(".preview-tabs");
  var section = tabs && tabs.parentElement;
  if (!section) { return; }
  section.classList.add("js-tabs");
  var current = "body";
  var timer = null;
  var seq = 0;

  function show(name) {
    current = name;
    tabs.querySelectorAll("[data-tab]").forEach(function (tab) {
      tab.setAttribute("aria-selected", tab.getAttribute("data-tab") === name ? "true" : "false");
    });
    section.querySelectorAll("[data-panel]").forEach(function (panel) {
      panel.classList.toggle("is-active", panel.getAttribute("data-panel") === name);
    });
    refresh();
  }

  function refresh() {
    var frame = section.querySelector("iframe[data-panel='" + current + "']");
    if (!frame) { return; }
    var mine = ++seq;
    var data = new FormData(form);
    data.delete("photo");  // never upload files just to preview
    data.delete("attachments");
    var token = form.querySelector("input[name=csrf_token]");
    fetch(frame.getAttribute("data-url"), {
      method: "POST",
      body: data,
      credentials: "same-origin",
      headers: { "X-CSRFToken": token ? token.value : "" }
    }).then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null && mine === seq) { frame.srcdoc = html; } })
      .catch(function () { /* keep the last preview */ });
  }

  tabs.addEventListener("click", function (event) {
    var tab = event.target.closest("[data-tab]");
    if (!tab) { return; }
    event.preventDefault();
    show(tab.getAttribute("data-tab"));
  });
  form.addEventListener("input", function () {
    if (current === "body") { return; }
    clearTimeout(timer);
    timer = setTimeout(refresh, 600);
  });
  show("body");
})();
