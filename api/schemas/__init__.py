"""Request and response schemas of the REST API; the OpenAPI document is generated from them."""
