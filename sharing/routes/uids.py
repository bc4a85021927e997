"""Path pieces shared by the routes. A DICOM UID is digits and dots (PS3.5 §9.1); anything else in
the path is not a study."""

import re

_UID = r"[0-9]+(?:\.[0-9]+)*"
UID = rf"(?P<study_instance_uid>{_UID})"
SERIES_UID = rf"(?P<series_instance_uid>{_UID})"
SOP_UID = rf"(?P<sop_instance_uid>{_UID})"
IS_UID = re.compile(_UID).fullmatch
