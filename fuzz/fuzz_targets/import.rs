//! Fuzz target: see `objectos::fuzzing::import`, against the sample CRM's
//! accounts (every field type the importer converts text to).
#![no_main]

use std::sync::LazyLock;

static MODEL: LazyLock<objectos::model::Model> = LazyLock::new(|| {
    objectos::artifact::model_from_bytes(include_bytes!("../import-model.json"))
        .expect("fuzz/import-model.json is a built artifact")
});

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    for object in ["crm_account", "crm_opportunity"] {
        let object = MODEL.object(object).expect("the CRM defines it");
        objectos::fuzzing::import(data, object);
    }
});
