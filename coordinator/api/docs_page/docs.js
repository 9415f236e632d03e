// The OpenAPI page: Swagger UI from this API's own files, reading this API's own document.
"use strict";
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null, // no badge fetched from another origin
  presets: [SwaggerUIBundle.presets.apis],
});
