"""Forms: parsing and validation, with errors on the fields they concern."""
