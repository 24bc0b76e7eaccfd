// A form for a tool's JSON Schema input: string, number, integer, boolean and enum fields,
// with defaults, bounds, descriptions and required marks. Anything else is edited as JSON.

function element(tag, attributes = {}, text) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    node.setAttribute(name, value === true ? "" : String(value));
  }
  if (text !== undefined) node.textContent = text;
  return node;
}

function kindOf(spec) {
  if (Array.isArray(spec.enum)) return "enum";
  const type = Array.isArray(spec.type) ? spec.type.find((t) => t !== "null") : spec.type;
  return ["string", "number", "integer", "boolean"].includes(type) ? type : "json";
}

function inputFor(name, spec, kind, required) {
  const id = `arg-${name}`;
  const common = { id, name, required: required && kind !== "boolean", "aria-describedby": spec.description ? `${id}-help` : undefined };
  if (kind === "enum") {
    const select = element("select", common);
    if (!required) select.append(element("option", { value: "" }, "—"));
    for (const value of spec.enum) {
      const option = element("option", { value: JSON.stringify(value) }, String(value));
      if (JSON.stringify(value) === JSON.stringify(spec.default)) option.selected = true;
      select.append(option);
    }
    return select;
  }
  if (kind === "boolean") {
    const box = element("input", { ...common, type: "checkbox" });
    box.checked = spec.default === true;
    return box;
  }
  if (kind === "json") {
    return element("textarea", { ...common, rows: 3, placeholder: "JSON" }, spec.default === undefined ? "" : JSON.stringify(spec.default));
  }
  const numeric = kind === "number" || kind === "integer";
  return element("input", {
    ...common,
    type: numeric ? "number" : "text",
    inputmode: numeric ? (kind === "integer" ? "numeric" : "decimal") : undefined,
    step: numeric ? (kind === "integer" ? "1" : "any") : undefined,
    min: spec.minimum ?? spec.exclusiveMinimum,
    max: spec.maximum ?? spec.exclusiveMaximum,
    minlength: spec.minLength,
    maxlength: spec.maxLength,
    value: spec.default,
    placeholder: spec.default === undefined ? (spec.title ?? "") : undefined,
  });
}

function readValue(input, kind) {
  if (kind === "boolean") return input.checked;
  const raw = input.value.trim();
  if (raw === "") return undefined;
  if (kind === "integer") {
    if (!/^-?\d+$/.test(raw)) throw new Error("must be a whole number");
    return Number.parseInt(raw, 10);
  }
  if (kind === "number") {
    const value = Number(raw);
    if (!Number.isFinite(value)) throw new Error("must be a number");
    return value;
  }
  if (kind === "enum" || kind === "json") {
    try {
      return JSON.parse(raw);
    } catch {
      throw new Error("must be valid JSON");
    }
  }
  return input.value;
}

/**
 * Fill `container` with fields for `schema`; returns `read()`, which gives the arguments
 * object or throws an Error naming the first field that is missing or malformed.
 */
export function buildSchemaForm(container, schema = {}) {
  container.replaceChildren();
  const required = new Set(schema.required ?? []);
  const fields = [];
  for (const [name, spec] of Object.entries(schema.properties ?? {})) {
    const kind = kindOf(spec);
    const isRequired = required.has(name);
    const row = element("div", { class: `field field-${kind}` });
    const label = element("label", { for: `arg-${name}` }, spec.title ?? name);
    if (isRequired) label.append(element("span", { class: "required", title: "required" }, " *"));
    const input = inputFor(name, spec, kind, isRequired);
    if (kind === "boolean") row.append(input, label);
    else row.append(label, input);
    if (spec.description) row.append(element("small", { id: `arg-${name}-help`, class: "muted" }, spec.description));
    container.append(row);
    fields.push({ name, kind, input, isRequired });
  }
  if (!fields.length) container.append(element("p", { class: "muted" }, "This tool takes no arguments."));
  return function read() {
    const values = {};
    for (const { name, kind, input, isRequired } of fields) {
      let value;
      try {
        value = readValue(input, kind);
      } catch (error) {
        input.focus();
        throw new Error(`${name} ${error.message}`);
      }
      if (value === undefined) {
        if (isRequired) {
          input.focus();
          throw new Error(`${name} is required`);
        }
        continue;
      }
      values[name] = value;
    }
    return values;
  };
}
