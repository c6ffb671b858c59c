// Swagger UI (vendored from npm by scripts/setup.sh) on the service's own
// openapi.yaml.
'use strict';
window.ui = SwaggerUIBundle({ url: '/openapi.yaml', dom_id: '#ui', deepLinking: true });
