// A bounded log of the JSON-RPC frames sent and received, newest last.

const MAX_FRAMES = 300;
const MAX_CHARS = 600;

export class FrameLog {
  constructor(list) {
    this.list = list;
  }

  /** Append one frame ("sent" or "received"). */
  add(direction, text) {
    const item = document.createElement("li");
    item.className = `frame frame-${direction}`;
    item.dataset.direction = direction;
    const arrow = document.createElement("span");
    arrow.className = "arrow";
    arrow.textContent = direction === "sent" ? "→" : "←";
    arrow.title = direction;
    const body = document.createElement("code");
    body.textContent = text.length > MAX_CHARS ? `${text.slice(0, MAX_CHARS)}… (${text.length} chars)` : text;
    item.append(arrow, body);
    const atBottom = this.list.scrollTop + this.list.clientHeight >= this.list.scrollHeight - 4;
    this.list.append(item);
    while (this.list.children.length > MAX_FRAMES) this.list.firstElementChild.remove();
    if (atBottom) this.list.scrollTop = this.list.scrollHeight;
  }

  /** Remove every entry. */
  clear() {
    this.list.replaceChildren();
  }
}
