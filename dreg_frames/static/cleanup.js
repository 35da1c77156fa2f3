// Front end of dreg_frames.widgets.CleanupWidget (an anywidget module, no build step).
// The Python side owns every decision; this file shows state and sends what the user did.
// data-lm-suppress-shortcuts on the root keeps JupyterLab's notebook shortcuts (d d, arrows, a, b, ...)
// from firing while focus is inside the widget.

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// "v1.*" or "*-rc?" -> a RegExp matching whole tags
function globToRegExp(pattern) {
  const escaped = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp(`^${escaped}$`);
}

const COLUMNS = [
  { key: "repository", label: "Repository" },
  { key: "tags", label: "Tags" },
  { key: "created", label: "Created" },
  { key: "age", label: "Age (days)", num: true },
  { key: "size", label: "Size", num: true },
  { key: "frees", label: "GC frees alone", num: true },
  { key: "outcome", label: "Outcome" },
];

function sortValue(row, key) {
  if (key === "tags") return row.tags.join(", ");
  return row[key];
}

function render({ model, el }) {
  const view = { sortKey: "age", sortDir: -1, repo: "", pattern: "", minAge: "" };
  const root = h("div", { class: "dreg-cleanup", "data-lm-suppress-shortcuts": "true" });
  // Hosts other than JupyterLab (classic notebook, VS Code) listen for shortcuts on bubbling keydown.
  root.addEventListener("keydown", (event) => event.stopPropagation());

  const title = h("h3");
  const repoSelect = h("select", { class: "dc-repo", "aria-label": "Repository filter" });
  const patternInput = h("input", {
    type: "text", class: "dc-pattern", placeholder: "e.g. v1.* or *-rc*", "aria-label": "Tag pattern",
  });
  const ageInput = h("input", { type: "number", min: "0", class: "dc-age", "aria-label": "Minimum age in days" });
  const filters = h(
    "div", { class: "dc-filters" },
    h("label", {}, "Repository", repoSelect),
    h("label", {}, "Tag pattern", patternInput),
    h("label", {}, "Older than", ageInput, "days"),
  );
  const selectAll = h("input", { type: "checkbox", class: "dc-select-all", "aria-label": "Select all shown" });
  const headRow = h("tr", {}, h("th", {}, selectAll));
  const sortButtons = {};
  for (const column of COLUMNS) {
    const button = h("button", { class: "dc-sort", type: "button", "data-key": column.key }, column.label);
    button.addEventListener("click", () => {
      view.sortDir = view.sortKey === column.key ? -view.sortDir : 1;
      view.sortKey = column.key;
      renderTable();
    });
    sortButtons[column.key] = button;
    headRow.append(h("th", { class: column.num ? "num" : "", "data-key": column.key }, button));
  }
  headRow.append(h("th", {}, "Warnings"));
  const body = h("tbody");
  const table = h("table", { class: "dc-table" }, h("thead", {}, headRow), body);
  const shownCount = h("span", { class: "dc-muted dc-count" });

  const dryRun = h("input", { type: "checkbox", class: "dc-dry-run" });
  const askButton = h("button", { type: "button", class: "dc-btn dc-ask" });
  const selectedCount = h("span", { class: "dc-selected-count" });
  const actions = h(
    "div", { class: "dc-actions" },
    h("label", { class: "dc-dry-label" }, dryRun, "Dry run (change nothing, only write the audit log)"),
    askButton, selectedCount,
  );
  const question = h("div", { class: "dc-question", role: "alertdialog", hidden: true });
  const log = h("ol", { class: "dc-log", "aria-live": "polite" });
  const audit = h("div", { class: "dc-audit" });
  const auditSummary = h("summary");
  root.append(
    title, filters, h("div", { class: "dc-scroll" }, table), shownCount, actions, question,
    h("details", { open: true }, h("summary", {}, "Messages"), log),
    h("details", { open: true, class: "dc-audit-box" }, auditSummary, audit),
  );
  el.append(root);

  function liveRows() {
    return model.get("rows");
  }

  function visibleRows() {
    let rows = liveRows();
    if (view.repo) rows = rows.filter((r) => r.repository === view.repo);
    if (view.pattern.trim()) {
      const re = globToRegExp(view.pattern.trim());
      rows = rows.filter((r) => r.tags.some((t) => re.test(t)));
    }
    if (view.minAge !== "" && !Number.isNaN(Number(view.minAge))) {
      rows = rows.filter((r) => r.age !== null && r.age >= Number(view.minAge));
    }
    const key = view.sortKey;
    return [...rows].sort((a, b) => {
      const x = sortValue(a, key), y = sortValue(b, key);
      if (x === y) return 0;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : 1) * view.sortDir;
    });
  }

  function setSelected(keys) {
    model.set("selected", keys);
    model.save_changes();
  }

  function renderRepos() {
    const repos = [...new Set(liveRows().map((r) => r.repository))].sort();
    if (view.repo && !repos.includes(view.repo)) view.repo = "";
    repoSelect.replaceChildren(
      h("option", { value: "" }, "All repositories"),
      ...repos.map((r) => h("option", { value: r, selected: r === view.repo }, r)),
    );
    repoSelect.value = view.repo;
  }

  function renderTable() {
    const focusedKey = document.activeElement && document.activeElement.dataset
      ? document.activeElement.dataset.rowKey : undefined;
    const rows = visibleRows();
    body.replaceChildren(...rows.map((row) => {
      const box = h("input", {
        type: "checkbox", class: "dc-pick", "data-row-key": row.key, disabled: row.deleted,
        "aria-label": `Select ${row.repository} ${row.tags.join(", ") || "(untagged)"}`,
      });
      box.addEventListener("change", () => {
        const chosen = new Set(model.get("selected"));
        if (box.checked) chosen.add(row.key); else chosen.delete(row.key);
        setSelected(liveRows().map((r) => r.key).filter((k) => chosen.has(k)));
      });
      return h(
        "tr", { "data-row-key": row.key, class: row.deleted ? "dc-deleted" : "" },
        h("td", {}, box),
        h("td", {}, row.repository),
        h("td", {}, row.tags.length ? row.tags.join(", ") : "(untagged)",
          h("div", { class: "dc-digest", title: row.digest }, row.digest.slice(0, 19) + "…")),
        h("td", { class: "dc-date" }, row.created, row.suspect ? h("span", { class: "dc-risk", title: "date not trusted" }, " ?") : null),
        h("td", { class: "num" }, row.age === null ? "" : row.age),
        h("td", { class: "num", title: row.size === null ? "" : `${row.size} bytes` }, row.size_text),
        h("td", { class: "num", title: row.frees === null ? "" : `${row.frees} bytes` }, row.frees_text),
        h("td", { class: "dc-outcome" }, row.outcome),
        h("td", { class: "dc-risk" }, row.risks.join("; ")),
      );
    }));
    for (const [key, button] of Object.entries(sortButtons)) {
      const th = button.parentElement;
      if (key === view.sortKey) th.setAttribute("aria-sort", view.sortDir > 0 ? "ascending" : "descending");
      else th.removeAttribute("aria-sort");
      button.textContent = COLUMNS.find((c) => c.key === key).label + (key === view.sortKey ? (view.sortDir > 0 ? " ▲" : " ▼") : "");
    }
    const total = liveRows().length;
    shownCount.textContent = rows.length === total ? `${total} candidates` : `${rows.length} of ${total} candidates shown`;
    applySelection();
    if (focusedKey) {
      const again = body.querySelector(`input[data-row-key="${CSS.escape(focusedKey)}"]`);
      if (again) again.focus();
    }
  }

  function applySelection() {
    const chosen = new Set(model.get("selected"));
    for (const tr of body.querySelectorAll("tr")) {
      const on = chosen.has(tr.dataset.rowKey);
      tr.classList.toggle("dc-selected", on);
      tr.querySelector("input.dc-pick").checked = on;
    }
    const boxes = [...body.querySelectorAll("input.dc-pick:not([disabled])")];
    selectAll.checked = boxes.length > 0 && boxes.every((b) => b.checked);
    selectedCount.textContent = `${chosen.size} selected`;
    askButton.disabled = chosen.size === 0 || model.get("busy");
  }

  function renderMode() {
    const dry = model.get("dry_run");
    dryRun.checked = dry;
    askButton.textContent = dry ? "Dry-run delete selected…" : "Delete selected…";
    askButton.classList.toggle("dc-danger", !dry);
    askButton.classList.toggle("dc-safe", dry);
  }

  function renderQuestion() {
    const q = model.get("question");
    if (!q || !q.token) {
      question.hidden = true;
      question.replaceChildren();
      return;
    }
    const confirm = h("button", { type: "button", class: `dc-btn dc-confirm ${q.dry_run ? "dc-safe" : "dc-danger"}` }, q.confirm_label);
    const cancel = h("button", { type: "button", class: "dc-btn dc-cancel" }, "Cancel");
    confirm.addEventListener("click", () => {
      confirm.disabled = true;
      model.send({ action: "confirm", token: q.token, dry_run: q.dry_run });
    });
    cancel.addEventListener("click", () => model.send({ action: "cancel" }));
    question.classList.toggle("dc-dry", q.dry_run);
    const parts = [
      h("div", {}, h("b", {}, q.text)),
      h("div", {}, "Every tag that goes:"),
      h("ul", { class: "dc-tags" }, ...q.tags.map((t) => h("li", {}, t))),
    ];
    if (q.risks.length) {
      parts.push(h("ul", { class: "dc-risks" }, ...q.risks.map((r) => h("li", { class: "dc-risk" }, "⚠ " + r))));
    }
    parts.push(h("div", { class: "dc-actions" }, confirm, cancel));
    question.replaceChildren(...parts);
    question.hidden = false;
    // Keyboard users land on Cancel, the harmless choice.
    cancel.focus();
  }

  function renderLog() {
    const lines = model.get("log");
    log.replaceChildren(...lines.map((line) => h("li", {}, line)));
    log.scrollTop = log.scrollHeight;
  }

  function renderAudit() {
    const rows = model.get("audit");
    auditSummary.textContent = `Audit log (${model.get("audit_path")}, newest first)`;
    if (!rows.length) {
      audit.replaceChildren(h("i", {}, "no audit entries yet"));
      return;
    }
    const columns = ["time_utc", "user", "repository", "digest", "tags", "bytes", "dry_run", "outcome", "error"];
    audit.replaceChildren(h(
      "table", { class: "dc-audit-table" },
      h("thead", {}, h("tr", {}, ...columns.map((c) => h("th", {}, c)))),
      h("tbody", {}, ...rows.map((r) => h("tr", {}, ...columns.map((c) => h(
        "td", { title: c === "digest" ? r[c] : null }, c === "digest" ? String(r[c]).slice(0, 19) + "…" : r[c],
      ))))),
    ));
  }

  function renderBusy() {
    const busy = model.get("busy");
    root.setAttribute("aria-busy", busy ? "true" : "false");
    for (const button of root.querySelectorAll("button.dc-confirm, button.dc-cancel")) button.disabled = busy;
    applySelection();
  }

  repoSelect.addEventListener("change", () => { view.repo = repoSelect.value; renderTable(); });
  patternInput.addEventListener("input", () => { view.pattern = patternInput.value; renderTable(); });
  ageInput.addEventListener("input", () => { view.minAge = ageInput.value; renderTable(); });
  selectAll.addEventListener("change", () => {
    const shown = visibleRows().filter((r) => !r.deleted).map((r) => r.key);
    const chosen = new Set(model.get("selected"));
    for (const key of shown) if (selectAll.checked) chosen.add(key); else chosen.delete(key);
    setSelected(liveRows().map((r) => r.key).filter((k) => chosen.has(k)));
  });
  dryRun.addEventListener("change", () => {
    // The question was asked in the other mode: hide it at once; the kernel withdraws it too.
    question.hidden = true;
    model.set("dry_run", dryRun.checked);
    model.save_changes();
    renderMode();
  });
  askButton.addEventListener("click", () => model.send({ action: "ask" }));

  const listeners = {
    "change:rows": () => { renderRepos(); renderTable(); },
    "change:selected": applySelection,
    "change:dry_run": renderMode,
    "change:question": renderQuestion,
    "change:log": renderLog,
    "change:audit": renderAudit,
    "change:audit_path": renderAudit,
    "change:busy": renderBusy,
    "change:title": () => { title.textContent = model.get("title"); },
  };
  for (const [event, callback] of Object.entries(listeners)) model.on(event, callback);
  title.textContent = model.get("title");
  renderRepos();
  renderTable();
  renderMode();
  renderQuestion();
  renderLog();
  renderAudit();
  return () => {
    for (const [event, callback] of Object.entries(listeners)) model.off(event, callback);
  };
}

export default { render };
