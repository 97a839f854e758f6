// A new campaign's page: only the chosen kind's settings are shown (the others are not saved).
document.addEventListener("DOMContentLoaded", () => {
  const kind = document.getElementById("id_kind");
  if (!kind) return;  // a saved campaign: its page has its own kind's settings alone
  const show = () => {
    for (const settings of document.querySelectorAll("fieldset.action-settings")) {
      settings.style.display = !kind.value || settings.classList.contains(`kind-${kind.value}`) ? "" : "none";
    }
  };
  kind.addEventListener("change", show);
  show();
});
