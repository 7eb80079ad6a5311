/*
 * The public verification page: reads the token from the URL fragment (never sent to
 * the server except in the POST body), asks POST /api/v1/verify, and shows the verdict.
 *
 * Everything shown comes from the verifier's answer, which holds attacker-written text
 * when a token is forged: the DOM is built with createElement/textContent only, never
 * with markup strings (the page's CSP makes the browser refuse them anyway).
 */
(function () {
  "use strict";

  var DEFAULT_LANG = "zh-CN";
  var STRINGS = JSON.parse(document.getElementById("page-strings").textContent);
  var VERDICTS = { VALID: "valid", INVALID: "invalid", UNDETERMINED: "undetermined" };
  var HOUR = 3600 * 1000;

  var state = {
    lang: STRINGS[document.documentElement.lang] ? document.documentElement.lang : DEFAULT_LANG,
    outcome: null, // {answer} or {failure: key, status, code}
    retry: null, // the last request, to send again
    sequence: 0,
  };

  function t(key) {
    var table = STRINGS[state.lang] || STRINGS[DEFAULT_LANG];
    return Object.prototype.hasOwnProperty.call(table, key) ? table[key] : key;
  }

  function english() {
    return state.lang === "en";
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function isObject(value) {
    return value !== null && typeof value === "object" && !Array.isArray(value);
  }

  function shown(value) {
    if (value === null || value === undefined) return "";
    if (typeof value === "string") return value;
    if (typeof value === "number" || typeof value === "boolean") return String(value);
    return JSON.stringify(value);
  }

  // Dates print as on the certificate: the day in China Standard Time (UTC+8).
  function cstDate(iso, exclusiveEnd) {
    var ms = Date.parse(iso);
    if (typeof iso !== "string" || isNaN(ms)) return shown(iso);
    if (exclusiveEnd) ms -= 1000; // valid_until is the midnight after the last day
    return new Date(ms + 8 * HOUR).toISOString().slice(0, 10);
  }

  function cstDateTime(iso) {
    var ms = Date.parse(iso);
    if (typeof iso !== "string" || isNaN(ms)) return shown(iso);
    var moment = new Date(ms + 8 * HOUR).toISOString();
    return moment.slice(0, 10) + " " + moment.slice(11, 19) + " (" + t("time_zone") + ")";
  }

  function pick(object, zhKey, enKey) {
    if (!isObject(object)) return "";
    var first = english() ? object[enKey] : object[zhKey];
    var second = english() ? object[zhKey] : object[enKey];
    return shown(first !== null && first !== undefined && first !== "" ? first : second);
  }

  // ------------------------------------------------------------ static text

  function applyLanguage() {
    document.documentElement.lang = state.lang;
    document.title = t("title");
    var nodes = document.querySelectorAll("[data-text]");
    for (var i = 0; i < nodes.length; i++) nodes[i].textContent = t(nodes[i].getAttribute("data-text"));
    var placeholders = document.querySelectorAll("[data-placeholder]");
    for (var j = 0; j < placeholders.length; j++) {
      placeholders[j].setAttribute("placeholder", t(placeholders[j].getAttribute("data-placeholder")));
    }
    var other = t("switch_lang");
    var link = document.getElementById("lang-switch");
    link.setAttribute("href", "?lang=" + encodeURIComponent(other) + location.hash);
    link.setAttribute("lang", other);
    link.setAttribute("hreflang", other);
  }

  function switchLanguage(event) {
    event.preventDefault();
    state.lang = t("switch_lang");
    var query = state.lang === DEFAULT_LANG ? "" : "?lang=" + encodeURIComponent(state.lang);
    history.replaceState(null, "", location.pathname + query + location.hash);
    render();
  }

  // ------------------------------------------------------------ the result

  function row(list, label, value, id) {
    if (value === "" || value === null || value === undefined) return;
    var term = el("dt", null, label);
    var definition = el("dd", null, value);
    if (id) definition.id = id;
    list.appendChild(term);
    list.appendChild(definition);
  }

  function idLabel(idType) {
    if (idType === "USCC") return t("id_uscc");
    if (idType === "RIC") return t("id_ric");
    return t("id_other");
  }

  function verdictPanel(kind, word, message, code) {
    var panel = el("div", "verdict verdict--" + kind);
    panel.id = "verdict";
    panel.setAttribute("role", "status");
    panel.setAttribute("data-verdict", kind.toUpperCase());
    var mark = el("span", "verdict__mark", kind === "valid" ? "✓" : kind === "invalid" ? "✕" : "?");
    mark.setAttribute("aria-hidden", "true");
    panel.appendChild(mark);
    var body = el("div", "verdict__body");
    var heading = el("p", "verdict__word", word);
    heading.id = "verdict-word";
    body.appendChild(heading);
    if (message) {
      var reason = el("p", "verdict__message", message);
      reason.id = "verdict-message";
      body.appendChild(reason);
    }
    if (kind !== "valid") body.appendChild(el("p", "verdict__note", t("verdict_" + kind + "_note")));
    if (code) {
      var codeLine = el("p", "verdict__code", t("code") + ": " + code);
      codeLine.id = "verdict-code";
      body.appendChild(codeLine);
    }
    panel.appendChild(body);
    return panel;
  }

  // Names the PDF check uses: identifier, holder_name, holder_id_number, valid_from,
  // valid_until, or a field's catalog name (labelled from the signed answer).
  var MISMATCH_LABELS = {
    identifier: "certificate_id",
    holder_name: "holder_name",
    valid_from: "valid_from",
    valid_until: "valid_until",
  };

  function mismatchLabel(name, certificate) {
    if (typeof name !== "string") return shown(name);
    if (Object.prototype.hasOwnProperty.call(MISMATCH_LABELS, name)) return t(MISMATCH_LABELS[name]);
    var holder = isObject(certificate) && isObject(certificate.holder) ? certificate.holder : {};
    if (name === "holder_id_number") return idLabel(holder.id_type);
    var fields = isObject(certificate) && Array.isArray(certificate.fields) ? certificate.fields : [];
    for (var i = 0; i < fields.length; i++) {
      if (isObject(fields[i]) && fields[i].name === name) return pick(fields[i], "label_zh", "label_en") || name;
    }
    return name;
  }

  function mismatchWarning(answer) {
    var documentInfo = answer.document;
    if (!isObject(documentInfo) || !Array.isArray(documentInfo.mismatches) || !documentInfo.mismatches.length) {
      return null;
    }
    var box = el("div", "notice notice--warning");
    box.id = "mismatch-warning";
    box.setAttribute("role", "alert");
    box.appendChild(el("p", "notice__title", t("mismatch_warning")));
    var list = el("ul", "notice__list");
    documentInfo.mismatches.forEach(function (name) {
      var item = isObject(name) ? shown(name.field || name.name || name) : name;
      list.appendChild(el("li", null, mismatchLabel(item, answer.certificate)));
    });
    box.appendChild(list);
    return box;
  }

  function certificateCard(certificate, verdictKind) {
    var card = el("section", "card");
    card.id = "certificate";
    card.appendChild(el("h2", null, t("certificate")));
    if (verdictKind !== "valid") {
      card.appendChild(el("p", "card__note card__note--" + verdictKind, t(verdictKind + "_data_note")));
    }
    var list = el("dl", "facts");
    var type = certificate.type;
    var typeName = pick(type, "name_zh", "name_en");
    var typeCode = isObject(type) ? shown(type.code) : "";
    row(list, t("certificate_type"), typeName ? typeName + (typeCode ? " (" + typeCode + ")" : "") : typeCode, "type-name");
    row(list, t("certificate_id"), shown(certificate.id), "certificate-id");
    var holder = isObject(certificate.holder) ? certificate.holder : {};
    row(list, t("holder_name"), shown(holder.name), "holder-name");
    row(list, idLabel(holder.id_type), shown(holder.id_number), "holder-id");
    (Array.isArray(certificate.fields) ? certificate.fields : []).forEach(function (field) {
      if (isObject(field)) row(list, pick(field, "label_zh", "label_en") || shown(field.name), shown(field.value));
    });
    row(list, t("valid_from"), certificate.valid_from ? cstDate(certificate.valid_from, false) : "", "valid-from");
    row(list, t("valid_until"), certificate.valid_until ? cstDate(certificate.valid_until, true) : t("no_end"), "valid-until");
    row(list, t("issued_at"), certificate.issued_at ? cstDate(certificate.issued_at, false) : "", "issued-at");
    if (isObject(certificate.status)) {
      var status = english() ? shown(certificate.status.name) : shown(certificate.status.name_zh || certificate.status.name);
      row(list, t("status"), status + (certificate.status.code ? " (" + shown(certificate.status.code) + ")" : ""), "status");
    }
    card.appendChild(list);
    return card;
  }

  function issuerCard(issuer) {
    var card = el("section", "card");
    card.id = "issuer";
    card.appendChild(el("h2", null, t("issuer")));
    var list = el("dl", "facts");
    row(list, t("office_name"), shown(issuer.office_name), "office-name");
    row(list, t("office_code"), shown(issuer.office), "office-code");
    var region = shown(issuer.region_name);
    var regionCode = shown(issuer.region);
    row(list, t("region"), region ? region + (regionCode ? " (" + regionCode + ")" : "") : regionCode, "region");
    card.appendChild(list);
    return card;
  }

  function renderAnswer(container, answer) {
    var kind = VERDICTS[answer.verdict] || "undetermined";
    var message = pick(answer.message, "zh", "en");
    container.appendChild(verdictPanel(kind, t("verdict_" + kind), message, shown(answer.code)));
    var warning = mismatchWarning(answer);
    if (warning) container.appendChild(warning);
    if (isObject(answer.certificate)) container.appendChild(certificateCard(answer.certificate, kind));
    if (isObject(answer.issuer)) container.appendChild(issuerCard(answer.issuer));
    if (isObject(answer.certificate) || isObject(answer.issuer)) {
      container.appendChild(el("p", "source-note", t("source_note")));
    }
    var sourceKey = { "issuer": "status_from_issuer", "status-list": "status_from_list" }[answer.status_source];
    if (sourceKey) container.appendChild(el("p", "status-source", t(sourceKey)));
    if (answer.checked_at) container.appendChild(el("p", "checked-at", t("checked_at") + ": " + cstDateTime(answer.checked_at)));
  }

  function renderFailure(container, failure) {
    var code = failure.code || (failure.status ? "HTTP " + failure.status : "");
    container.appendChild(verdictPanel("undetermined", t("verdict_undetermined"), t(failure.key), code));
    if (state.retry) {
      var again = el("button", "button button--secondary", t("retry"));
      again.type = "button";
      again.id = "retry";
      again.addEventListener("click", function () {
        send(state.retry);
      });
      container.appendChild(again);
    }
  }

  function render() {
    applyLanguage();
    var container = document.getElementById("result");
    clear(container);
    if (!state.outcome) {
      container.hidden = true;
      return;
    }
    if (state.outcome.answer) renderAnswer(container, state.outcome.answer);
    else renderFailure(container, state.outcome);
    container.hidden = false;
  }

  // ------------------------------------------------------------ talking to the verifier

  function failureFor(status, body) {
    var code = isObject(body) && typeof body.code === "string" ? body.code : "";
    var key = "server_error";
    if (status === 429) key = "rate_limited";
    else if (code === "PDF_UNREADABLE") key = "pdf_unreadable";
    else if (code === "PDF_NO_CERTIFICATE") key = "pdf_no_certificate";
    else if (status === 413 || code === "PDF_TOO_LARGE" || code === "REQUEST_TOO_LARGE") key = "too_large";
    return { failure: true, key: key, status: status, code: code };
  }

  function outcomeFor(status, text) {
    var body = null;
    try {
      body = JSON.parse(text);
    } catch (error) {
      body = null;
    }
    if (status !== 200) return failureFor(status, body);
    if (!isObject(body) || !Object.prototype.hasOwnProperty.call(VERDICTS, body.verdict)) {
      return { failure: true, key: "bad_answer", status: status, code: "" };
    }
    return { answer: body };
  }

  function send(request) {
    var sequence = ++state.sequence;
    state.retry = request;
    var checking = document.getElementById("checking");
    var result = document.getElementById("result");
    checking.hidden = false;
    result.setAttribute("aria-busy", "true");
    var init = {
      method: "POST",
      headers: { Accept: "application/json" },
      credentials: "same-origin",
      cache: "no-store",
      referrerPolicy: "no-referrer",
    };
    var url = "/api/v1/verify";
    if (request.file) {
      var form = new FormData();
      form.append("file", request.file, request.file.name || "certificate.pdf");
      init.body = form;
      url = "/api/v1/verify/pdf";
    } else {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(request.json);
    }
    function settle(outcome) {
      if (sequence !== state.sequence) return; // a newer request has been sent
      checking.hidden = true;
      result.removeAttribute("aria-busy");
      state.outcome = outcome;
      render();
      result.focus({ preventScroll: true });
      if (request.fromForm) result.scrollIntoView({ block: "start" });
    }
    fetch(url, init).then(
      function (response) {
        return response.text().then(
          function (text) {
            settle(outcomeFor(response.status, text));
          },
          function () {
            settle({ failure: true, key: "network_error", status: response.status, code: "" });
          }
        );
      },
      function () {
        settle({ failure: true, key: "network_error", status: 0, code: "" });
      }
    );
  }

  function tokenFromFragment() {
    var raw = location.hash.replace(/^#/, "");
    if (raw.indexOf("%") >= 0) {
      try {
        raw = decodeURIComponent(raw);
      } catch (error) {
        // left as it is: the verifier will call it malformed
      }
    }
    return raw.trim();
  }

  function verifyFragment() {
    var token = tokenFromFragment();
    if (token) send({ json: { token: token } });
  }

  // A QR code holds "<public URL>/v#<token>"; a bare token has no scheme and no "#".
  function pastedRequest(text) {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text) || text.indexOf("#") >= 0) return { json: { qr_text: text }, fromForm: true };
    return { json: { token: text.replace(/\s+/g, "") }, fromForm: true };
  }

  function showError(id, key) {
    var node = document.getElementById(id);
    if (key) {
      node.textContent = t(key);
      node.hidden = false;
    } else {
      node.textContent = "";
      node.hidden = true;
    }
  }

  function onPaste(event) {
    event.preventDefault();
    var text = document.getElementById("paste-input").value.trim();
    if (!text) {
      showError("paste-error", "paste_empty");
      return;
    }
    showError("paste-error", null);
    send(pastedRequest(text));
  }

  function onUpload(event) {
    if (event) event.preventDefault();
    var input = document.getElementById("upload-input");
    var file = input.files && input.files[0];
    if (!file) {
      showError("upload-error", "upload_empty");
      return;
    }
    showError("upload-error", null);
    send({ file: file, fromForm: true });
  }

  function start() {
    document.getElementById("result").setAttribute("tabindex", "-1");
    document.getElementById("lang-switch").addEventListener("click", switchLanguage);
    document.getElementById("paste-form").addEventListener("submit", onPaste);
    document.getElementById("upload-form").addEventListener("submit", onUpload);
    document.getElementById("upload-input").addEventListener("change", function () {
      onUpload(null);
    });
    window.addEventListener("hashchange", verifyFragment);
    render();
    verifyFragment();
  }

  start();
})();
