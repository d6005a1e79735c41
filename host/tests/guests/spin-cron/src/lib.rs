//! A component built for Spin's cron trigger, not for weir: it knows only
//! `fermyon:spin-cron`. Fails on odd timestamps so both result arms are seen.

wit_bindgen::generate!({ path: "wit", world: "fermyon:spin-cron/spin-cron" });

struct SpinCron;

impl Guest for SpinCron {
    fn handle_cron_event(metadata: Metadata) -> Result<(), Error> {
        println!("spin cron component at {}", metadata.timestamp);
        if metadata.timestamp % 2 == 1 {
            return Err(Error::Other(format!("odd timestamp {}", metadata.timestamp)));
        }
        Ok(())
    }
}

export!(SpinCron);
