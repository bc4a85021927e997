from sharing.dicom.demographics import patient_sex_display, person_name_display


def test_person_names_read_family_name_first_in_capitals():
    assert person_name_display("DOE^JANE") == "DOE, Jane"
    assert person_name_display("DOE^JANE^ANN^DR^JR") == "DOE, Jane Ann, Jr"
    assert person_name_display("van Dijk^Marieke") == "VAN DIJK, Marieke"
    assert person_name_display("O'NEIL^MARY-KATE") == "O'NEIL, Mary-Kate"


def test_person_names_keep_only_the_alphabetic_group():
    assert person_name_display("YAMADA^TARO=山田^太郎=やまだ^たろう") == "YAMADA, Taro"


def test_person_names_with_one_component_are_shown_as_they_are():
    assert person_name_display("ANONYMOUS") == "ANONYMOUS"
    assert person_name_display("^JANE") == "Jane"
    assert person_name_display("") == ""


def test_patient_sex_is_in_words():
    assert [patient_sex_display(v) for v in ("F", "M", "O", "", "X")] == ["Female", "Male", "Other", "", "X"]
