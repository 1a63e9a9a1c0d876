"""The origin API: users, signed uploads, photos, the active photo and edge-facing lookups."""
