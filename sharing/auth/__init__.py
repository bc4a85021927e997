"""How requests are authenticated beyond the session: personal API tokens on DICOMweb."""
