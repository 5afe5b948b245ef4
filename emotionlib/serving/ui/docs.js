// Swagger UI on the service's OpenAPI document (/docs.json), as BentoML's page configures it,
// with validatorUrl null: Swagger UI otherwise shows a badge image from validator.swagger.io.
window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "/docs.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl],
    layout: "StandaloneLayout",
  });
};
