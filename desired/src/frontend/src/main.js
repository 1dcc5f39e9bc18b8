// ai-infra web UI entry point.
const app = document.getElementById("app");
fetch("/api/v1/projects")
  .then((r) => r.json())
  .then((projects) => {
    app.innerHTML = "<h1>ai-infra " + app.dataset.version + "</h1>" +
      "<ul>" + projects.map((p) => "<li>" + p.name + "</li>").join("") + "</ul>";
  })
  .catch(() => { app.textContent = "backend unavailable"; });
