// Starts Swagger UI on /api/docs from the studio's own copy (no CDN): the page names the document to show.

const root = document.getElementById("swagger-ui");
window.ui = window.SwaggerUIBundle({
  url: root.dataset.openapiUrl,
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [window.SwaggerUIBundle.presets.apis, window.SwaggerUIBundle.SwaggerUIStandalonePreset],
  layout: "BaseLayout",
  oauth2RedirectUrl: new URL(root.dataset.oauth2RedirectUrl, window.location.href).href,
});
