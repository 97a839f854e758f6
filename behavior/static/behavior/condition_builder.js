// The condition builder (behavior/condition_builder.py): groups (all, any, not), a field picker over the
// field registry, operators by the field's type, value inputs that fit, and the rule in words with the audience
// count from the page's admin endpoint. The textarea's JSON stays the stored form: every edit in the builder
// rewrites it, every edit of it redraws the builder. No library, no build step.
"use strict";
(() => {
  const DEFAULT_OP = {number: "gte", string: "eq", boolean: "eq", datetime: "within_last"};
  const MODE_KEY = "foresight.condition-editor";  // the view a person chose last: "builder" or "json"
  const COUNT_DELAY = 500;  // ms of quiet before counting: the count may read a sample of events

  const join = (path, key) => (path ? `${path}.${key}` : key);
  const kindOf = (node) => ["all", "any"].find((k) => node && typeof node === "object" && Array.isArray(node[k]));
  const isNot = (node) => node && typeof node === "object" && !Array.isArray(node) && "not" in node
    && Object.keys(node).length === 1;

  // Like Python's json.dumps: ", " and ": " between items; a group puts each child on a line of its own.
  const dump = (v) => {
    if (Array.isArray(v)) return `[${v.map(dump).join(", ")}]`;
    if (v && typeof v === "object") {
      return `{${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}: ${dump(x)}`).join(", ")}}`;
    }
    return v === undefined ? "null" : JSON.stringify(v);
  };
  const format = (node, indent = "") => {
    const kind = kindOf(node);
    if (kind && Object.keys(node).length === 1 && node[kind].length) {
      const inner = indent + "  ";
      return `{"${kind}": [\n${node[kind].map((c) => inner + format(c, inner)).join(",\n")}]}`;
    }
    if (isNot(node)) return `{"not": ${format(node.not, indent)}}`;
    return dump(node);
  };

  // Why the builder cannot show a tree (it edits it as JSON then), or null.
  const unfit = (node, path = "") => {
    if (!node || typeof node !== "object" || Array.isArray(node)) return `${path || "the condition"}: not an object`;
    const kind = kindOf(node);
    if (kind) {
      if (Object.keys(node).length !== 1) return `${path || "the condition"}: ${kind} must be the only key`;
      for (const [i, child] of node[kind].entries()) {
        const why = unfit(child, `${join(path, kind)}[${i}]`);
        if (why) return why;
      }
      return null;
    }
    if (isNot(node)) return unfit(node.not, join(path, "not"));
    if (typeof node.field !== "string") return `${path || "the condition"}: a rule needs a field`;
    return null;
  };

  const el = (tag, attrs = {}, ...children) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") e.textContent = v;
      else e.setAttribute(k, v === true ? "" : v);
    }
    e.append(...children.filter((c) => c !== null && c !== undefined));
    return e;
  };

  function setup(editor) {
    const registry = JSON.parse(editor.querySelector("script[type='application/json']").textContent);
    const text = editor.querySelector("textarea");
    const builder = editor.querySelector(".condition-builder");
    const toolbar = editor.querySelector(".condition-toolbar");
    const toggle = editor.querySelector(".condition-toggle");
    const note = editor.querySelector(".condition-toggle-note");
    const summary = editor.querySelector(".condition-summary");
    const words = editor.querySelector(".condition-words");
    const count = editor.querySelector(".condition-count");
    const fields = new Map(registry.fields.map((f) => [f.name, f]));
    const ops = registry.operators;
    const csrf = text.form && text.form.querySelector("input[name=csrfmiddlewaretoken]");
    let tree = null;  // the condition as the builder holds it; null: none yet
    let broken = null;  // why the JSON cannot be shown in the builder, or null
    let timer = null;
    let inFlight = null;

    const fieldOf = (name) => fields.get(name) || {name, type: "unknown", words: `unknown field ${name}`,
      group: "Unknown", hint: "", values: []};
    const opsFor = (type) => Object.keys(ops).filter((op) => ops[op].types.includes(type));
    const defaultValue = (op, type) => {
      const kind = ops[op] ? ops[op].value : "one";
      if (kind === "flag") return true;
      if (kind === "pair") return [null, null];
      if (kind === "list") return [];
      if (kind === "one" && type === "boolean") return true;
      if (kind === "one" && type === "string") return "";
      return null;
    };
    const newRule = () => {
      const field = registry.fields[0];
      const op = DEFAULT_OP[field.type];
      return {field: field.name, op, value: defaultValue(op, field.type)};
    };

    // -- reading and writing the JSON ------------------------------------------------------------------------
    const readJson = () => {
      const raw = text.value.trim();
      if (!raw) return {tree: null, why: null};
      let parsed;
      try {
        parsed = JSON.parse(raw);
      } catch (error) {
        return {tree: null, why: `the JSON does not read (${error.message})`};
      }
      if (parsed === null) return {tree: null, why: null};  // how a new object's empty JSON field renders
      return {tree: parsed, why: unfit(parsed)};
    };
    const writeJson = () => {
      text.value = tree === null ? "" : format(tree);
    };

    // -- the views ---------------------------------------------------------------------------------------------
    const setMode = (mode, remember) => {
      const json = mode === "json";
      editor.classList.toggle("condition-editor--json", json);
      builder.hidden = json;
      toggle.setAttribute("aria-pressed", String(json));
      toggle.textContent = json ? "Edit with the builder" : "Edit as JSON";
      if (remember) localStorage.setItem(MODE_KEY, mode);
    };
    toggle.addEventListener("click", () => {
      const json = toggle.getAttribute("aria-pressed") === "true";
      if (json && broken) {
        note.textContent = `The builder cannot show this condition: ${broken}. Fix the JSON first.`;
        return;
      }
      note.textContent = "";
      setMode(json ? "builder" : "json", true);
      (json ? builder.querySelector("select, input, button") : text).focus();
    });
    text.addEventListener("input", () => {
      const read = readJson();
      broken = read.why;
      if (!broken) {
        tree = read.tree;
        render();
        note.textContent = "";
      }
      scheduleCount();
    });

    // -- drawing the builder -----------------------------------------------------------------------------------
    const commit = (redraw, focusKey) => {
      broken = null;
      writeJson();
      if (redraw) render(focusKey);
      scheduleCount();
    };

    function render(focusKey) {
      const active = document.activeElement;
      const key = focusKey || (active && builder.contains(active) ? active.dataset.key : null);
      const root = tree === null ? {all: []} : tree;
      builder.replaceChildren(slot(root, "", (v) => { tree = v; }, null));
      if (!kindOf(root)) {  // one rule (or a negated one) at the root: a second makes the root a group of all
        const add = el("button", {type: "button", class: "cb-btn", "data-key": "|add", text: "Add a rule"});
        add.addEventListener("click", () => {
          tree = {all: [tree, newRule()]};
          commit(true, "all[1]|field");
        });
        builder.append(el("div", {class: "cb-add"}, add));
      }
      if (key) {
        const again = builder.querySelector(`[data-key="${CSS.escape(key)}"]`);
        if (again) again.focus();
      }
    }

    // A place in the tree: a node, negated or not ("not" box), with a Remove button unless it is the root.
    function slot(node, path, set, remove) {
      const negated = isNot(node);
      const inner = negated ? node.not : node;
      const innerPath = negated ? join(path, "not") : path;
      const box = el("div", {class: `cb-slot${negated ? " cb-negated" : ""}`});
      const head = el("div", {class: "cb-slot-head"});
      const notId = `cb-not-${text.id}-${path || "root"}`;
      const not = el("input", {type: "checkbox", id: notId, class: "cb-not", "data-key": `${path}|not`});
      not.checked = negated;
      not.addEventListener("change", () => {
        if (tree === null) tree = {all: []};
        set(not.checked ? {not: inner} : inner);
        commit(true);
      });
      head.append(not, el("label", {for: notId}, "not", el("span", {class: "cb-sr", text: " (leave out whom this matches)"})));
      if (remove) {
        const button = el("button", {type: "button", class: "cb-btn cb-btn-quiet cb-remove", "data-key": `${path}|remove`,
          "aria-label": `Remove ${kindOf(inner) ? "this group" : "this rule"}`, text: "Remove"});
        button.addEventListener("click", remove);
        head.append(button);
      }
      box.append(head, body(inner, innerPath, (v) => set(negated ? {not: v} : v)));
      return box;
    }

    function body(node, path, set) {
      if (kindOf(node)) return group(node, path, set);
      if (isNot(node)) return slot(node, path, set, null);
      return rule(node, path);
    }

    function group(node, path, set) {
      const kind = kindOf(node);
      const children = node[kind];
      const listPath = join(path, kind);
      const box = el("fieldset", {class: "cb-group", "data-path": path});
      const pick = el("select", {class: "cb-kind", "data-key": `${path}|kind`, "aria-label": "Customers who match"},
        el("option", {value: "all", text: "all of these rules"}), el("option", {value: "any", text: "any of these rules"}));
      pick.value = kind;
      pick.addEventListener("change", () => {
        set({[pick.value]: children});
        commit(true);
      });
      box.append(el("legend", {}, "Customers who match ", pick));
      const list = el("ol", {class: "cb-children"});
      children.forEach((child, i) => {
        const childPath = `${listPath}[${i}]`;
        list.append(el("li", {}, slot(child, childPath, (v) => { children[i] = v; }, () => {
          children.splice(i, 1);
          const next = children.length ? `${listPath}[${Math.min(i, children.length - 1)}]|remove` : `${path}|add`;
          commit(true, next);
        })));
      });
      if (!children.length) list.append(el("li", {class: "cb-empty", text: "No rule yet: add one."}));
      const add = el("button", {type: "button", class: "cb-btn", "data-key": `${path}|add`, text: "Add a rule"});
      const addGroup = el("button", {type: "button", class: "cb-btn cb-btn-quiet", "data-key": `${path}|group`,
        text: "Add a group"});
      const adding = (made) => () => {
        if (tree === null) tree = node;
        children.push(made());
        const newPath = `${listPath}[${children.length - 1}]`;
        commit(true, kindOf(children[children.length - 1]) ? `${join(newPath, "any")}[0]|field`
          : `${newPath}|field`);
      };
      add.addEventListener("click", adding(newRule));
      addGroup.addEventListener("click", adding(() => ({any: [newRule()]})));
      box.append(list, el("div", {class: "cb-add"}, add, " ", addGroup), el("div", {class: "cb-error"}));
      return box;
    }

    function rule(node, path) {
      const field = fieldOf(node.field);
      const row = el("div", {class: "cb-rule", "data-path": path});
      const find = el("input", {type: "search", class: "cb-find", "data-key": `${path}|find`, placeholder: "find a field",
        "aria-label": "Find a field by its words (Enter picks the first match)"});
      const pick = el("select", {class: "cb-field", "data-key": `${path}|field`, "aria-label": "Field"});
      const groups = new Map();
      for (const f of fields.has(node.field) ? registry.fields : [field, ...registry.fields]) {
        if (!groups.has(f.group)) groups.set(f.group, el("optgroup", {label: f.group}));
        groups.get(f.group).append(el("option", {value: f.name, text: f.words, title: `${f.name} (${f.type})`}));
      }
      pick.append(...groups.values());
      pick.value = node.field;
      find.addEventListener("input", () => {
        const q = find.value.trim().toLowerCase();
        for (const g of pick.querySelectorAll("optgroup")) {
          let shown = 0;
          for (const o of g.querySelectorAll("option")) {
            o.hidden = q !== "" && !`${o.textContent} ${o.value}`.toLowerCase().includes(q) && o.value !== pick.value;
            shown += o.hidden ? 0 : 1;
          }
          g.hidden = shown === 0;
        }
      });
      find.addEventListener("keydown", (event) => {
        if (event.key !== "Enter") return;
        event.preventDefault();  // not the form's submit
        const q = find.value.trim().toLowerCase();
        const first = [...pick.querySelectorAll("option")].find(
          (o) => q && `${o.textContent} ${o.value}`.toLowerCase().includes(q));
        if (first) {
          pick.value = first.value;
          pick.dispatchEvent(new Event("change"));
        }
      });
      pick.addEventListener("change", () => {
        const chosen = fieldOf(pick.value);
        node.field = chosen.name;
        if (chosen.type !== field.type || !opsFor(chosen.type).includes(node.op)) {  // another kind of value
          node.op = DEFAULT_OP[chosen.type] || node.op;
          node.value = defaultValue(node.op, chosen.type);
        }
        commit(true, `${path}|field`);
      });
      const op = el("select", {class: "cb-op", "data-key": `${path}|op`, "aria-label": "Operator"});
      const choices = opsFor(field.type);
      if (!choices.includes(node.op)) choices.push(node.op);
      for (const name of choices) {
        op.append(el("option", {value: name, text: ops[name] ? ops[name].words : `unknown operator ${name}`}));
      }
      op.value = node.op;
      op.addEventListener("change", () => {
        const kind = ops[node.op] && ops[node.op].value;
        node.op = op.value;
        if (kind !== ops[node.op].value) node.value = defaultValue(node.op, field.type);
        commit(true, `${path}|op`);
      });
      const hint = [field.type, field.hint, field.name].filter(Boolean).join(" · ");
      row.append(el("div", {class: "cb-rule-line"}, find, pick, op, value(node, field, path)),
        el("div", {class: "cb-hint", text: hint}), el("div", {class: "cb-error"}));
      return row;
    }

    // -- value inputs --------------------------------------------------------------------------------------------
    const toNumber = (s) => (s.trim() === "" || Number.isNaN(Number(s)) ? null : Number(s));
    const toLocal = (v) => {
      const d = typeof v === "string" ? new Date(v) : null;
      return d && !Number.isNaN(d.getTime()) ? d.toISOString().slice(0, 16) : "";
    };
    const fromLocal = (s) => (s ? `${s}:00Z` : null);

    function scalarInput(type, field, current, key, label, onValue) {
      if (type === "boolean") {
        const s = el("select", {class: "cb-value", "data-key": key, "aria-label": label},
          el("option", {value: "true", text: "yes"}), el("option", {value: "false", text: "no"}));
        s.value = String(current !== false);
        s.addEventListener("change", () => onValue(s.value === "true"));
        return s;
      }
      if (type === "number") {
        const attrs = field.score ? {min: "0", max: "1", step: "0.01"} : {step: "any"};
        const i = el("input", {type: "number", class: "cb-value", "data-key": key, "aria-label": label, ...attrs});
        i.value = typeof current === "number" ? String(current) : "";
        i.addEventListener("input", () => onValue(toNumber(i.value)));
        return i;
      }
      if (type === "datetime") {
        const i = el("input", {type: "datetime-local", class: "cb-value", "data-key": key,
          "aria-label": `${label} (UTC)`});
        i.value = toLocal(current);
        i.addEventListener("input", () => onValue(fromLocal(i.value)));
        return el("span", {class: "cb-with-unit"}, i, el("span", {text: "UTC"}));
      }
      const i = el("input", {type: "text", class: "cb-value", "data-key": key, "aria-label": label});
      i.value = typeof current === "string" ? current : "";
      if (field.values.length) {
        const listId = `cb-values-${text.id}-${field.name}`;
        if (!document.getElementById(listId)) {
          editor.append(el("datalist", {id: listId}, ...field.values.map((v) => el("option", {value: v}))));
        }
        i.setAttribute("list", listId);
      }
      i.addEventListener("input", () => onValue(i.value));
      return i;
    }

    // A value the inputs cannot show (a hand-written list where one value is expected...): edited as JSON.
    function rawInput(node, path) {
      const i = el("input", {type: "text", class: "cb-value cb-raw", "data-key": `${path}|value`,
        "aria-label": "Value, as JSON"});
      i.value = dump(node.value);
      i.addEventListener("input", () => {
        try {
          node.value = JSON.parse(i.value);
          commit(false);
        } catch (error) {
          /* not JSON yet: the stored form keeps the last value that read */
        }
      });
      return i;
    }

    function value(node, field, path) {
      const kind = ops[node.op] ? ops[node.op].value : null;
      const key = `${path}|value`;
      const set = (v) => { node.value = v; commit(false); };
      const scalar = (v) => v === null || ["number", "string", "boolean"].includes(typeof v);
      if (kind === null || field.type === "unknown") return rawInput(node, path);
      if (kind === "flag") {
        if (typeof node.value !== "boolean") return rawInput(node, path);
        const s = el("select", {class: "cb-value", "data-key": key, "aria-label": "Value"},
          el("option", {value: "true", text: "yes"}), el("option", {value: "false", text: "no: it is known"}));
        s.value = String(node.value);
        s.addEventListener("change", () => set(s.value === "true"));
        return s;
      }
      if (kind === "days") {
        if (!scalar(node.value)) return rawInput(node, path);
        const i = el("input", {type: "number", min: "0", step: "any", class: "cb-value", "data-key": key,
          "aria-label": "Days"});
        i.value = typeof node.value === "number" ? String(node.value) : "";
        i.addEventListener("input", () => set(toNumber(i.value)));
        return el("span", {class: "cb-with-unit"}, i, el("span", {text: "days"}));
      }
      if (kind === "one") {
        if (!scalar(node.value)) return rawInput(node, path);
        return scalarInput(field.type, field, node.value, key, "Value", set);
      }
      if (kind === "pair") {
        if (!Array.isArray(node.value) || node.value.length !== 2 || !node.value.every(scalar)) return rawInput(node, path);
        const pair = node.value;
        return el("span", {class: "cb-pair"},
          scalarInput(field.type, field, pair[0], key, "From", (v) => { pair[0] = v; commit(false); }),
          el("span", {text: " and "}),
          scalarInput(field.type, field, pair[1], `${path}|high`, "To", (v) => { pair[1] = v; commit(false); }));
      }
      // A list: the field's known values to tick, and any others typed, comma-separated.
      if (!Array.isArray(node.value) || !node.value.every(scalar)) return rawInput(node, path);
      const list = node.value;
      const box = el("span", {class: "cb-list"});
      const known = field.values;
      if (known.length) {
        const ticks = el("fieldset", {class: "cb-ticks"}, el("legend", {class: "cb-sr", text: "Values"}));
        known.forEach((v, i) => {
          const id = `cb-${text.id}-${path}-${i}`;
          const tick = el("input", {type: "checkbox", id, value: v, "data-key": `${path}|tick${i}`});
          tick.checked = list.includes(v);
          tick.addEventListener("change", () => {
            const at = list.indexOf(v);
            if (tick.checked && at < 0) list.push(v);
            if (!tick.checked && at >= 0) list.splice(at, 1);
            commit(false);
          });
          ticks.append(el("span", {class: "cb-tick"}, tick, el("label", {for: id, text: v})));
        });
        box.append(ticks);
      }
      const others = el("input", {type: "text", class: "cb-value cb-others", "data-key": key,
        "aria-label": known.length ? "Other values, comma-separated" : "Values, comma-separated",
        placeholder: known.length ? "others, comma-separated" : "comma-separated"});
      others.value = list.filter((v) => !known.includes(v)).join(", ");
      others.addEventListener("input", () => {
        const typed = others.value.split(",").map((s) => s.trim()).filter((s) => s !== "")
          .map((s) => (field.type === "number" ? toNumber(s) : s));
        list.splice(0, list.length, ...list.filter((v) => known.includes(v)), ...typed);
        commit(false);
      });
      box.append(others);
      return box;
    }

    // -- words and count -----------------------------------------------------------------------------------------
    function scheduleCount() {
      clearTimeout(timer);
      timer = setTimeout(countNow, COUNT_DELAY);
    }

    function showError(path, message) {
      for (const old of builder.querySelectorAll(".cb-invalid")) old.classList.remove("cb-invalid");
      for (const old of builder.querySelectorAll(".cb-error")) old.textContent = "";
      if (path === null) return;
      const places = [...builder.querySelectorAll("[data-path]")].filter(
        (e) => e.dataset.path === "" || path === e.dataset.path || path.startsWith(`${e.dataset.path}.`));
      const place = places.sort((a, b) => b.dataset.path.length - a.dataset.path.length)[0];
      if (!place) return;
      place.classList.add("cb-invalid");
      const slotError = place.querySelector(":scope > .cb-error");
      if (slotError) slotError.textContent = message;
    }

    async function countNow() {
      if (inFlight) inFlight.abort();
      if (broken) {
        words.textContent = `-: ${broken}`;
        count.textContent = "-";
        return;
      }
      if (tree === null) {
        words.textContent = "-";
        count.textContent = "No condition yet.";
        showError(null);
        return;
      }
      inFlight = new AbortController();
      count.textContent = "Counting…";
      summary.setAttribute("aria-busy", "true");
      try {
        const response = await fetch(editor.dataset.countUrl, {
          method: "POST", signal: inFlight.signal, credentials: "same-origin",
          headers: {"Content-Type": "application/json", "X-CSRFToken": csrf ? csrf.value : ""},
          body: JSON.stringify({condition: tree}),
        });
        const answer = await response.json();
        if (answer.error) {
          words.textContent = `Not valid yet: ${answer.error}`;
          count.textContent = "-";
          showError(answer.path === undefined ? null : answer.path, answer.error);
        } else {
          words.textContent = answer.words;
          count.textContent = answer.says;
          showError(null);
        }
      } catch (error) {
        if (error.name !== "AbortError") count.textContent = `Could not count: ${error.message}`;
      } finally {
        summary.removeAttribute("aria-busy");
      }
    }

    // -- start ------------------------------------------------------------------------------------------------------
    const read = readJson();
    broken = read.why;
    tree = broken ? null : read.tree;
    toolbar.hidden = false;
    editor.classList.add("condition-editor--ready");
    editor.querySelector(".condition-audience").hidden = false;
    render();
    setMode(broken || localStorage.getItem(MODE_KEY) === "json" ? "json" : "builder", false);
    if (broken) note.textContent = `Shown as JSON: ${broken}.`;
    countNow();
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const editor of document.querySelectorAll(".condition-editor")) setup(editor);
  });
})();
