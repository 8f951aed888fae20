// The objects list: colour swatch, editable name, hide / show and delete buttons per object.
import { css } from "./colors.js";
import { colorOf } from "./view.js";

// handlers: select(id), rename(obj, name), toggle(obj), remove(id)
export function renderObjectList(container, objects, selected, handlers) {
  container.replaceChildren(...objects.map((obj) => {
    const item = document.createElement("li");
    item.dataset.id = obj.id;
    item.className = (obj.id === selected ? "selected " : "") + (obj.hidden ? "hidden-object" : "");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = css(colorOf(obj.id));
    const name = document.createElement("input");
    name.className = "name";
    name.value = obj.name;
    name.title = "Rename";
    name.setAttribute("aria-label", "object name");
    name.addEventListener("change", () => handlers.rename(obj, name.value.trim() || obj.name));
    name.addEventListener("keydown", (event) => event.stopPropagation());
    const hide = document.createElement("button");
    hide.textContent = obj.hidden ? "show" : "hide";
    hide.title = "Hide / show (H)";
    hide.addEventListener("click", (event) => { event.stopPropagation(); handlers.toggle(obj); });
    const remove = document.createElement("button");
    remove.textContent = "\u2715";
    remove.title = "Delete (Del)";
    remove.className = "delete";
    remove.addEventListener("click", (event) => { event.stopPropagation(); handlers.remove(obj.id); });
    item.append(swatch, name, hide, remove);
    item.addEventListener("click", () => handlers.select(obj.id));
    return item;
  }));
}
