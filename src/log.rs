//! Access logging (stub; replaced by the LogFormat implementation).
#[derive(Debug)]
pub struct LogFormat {
    pub source: String,
}
impl LogFormat {
    pub fn compile(fmt: &str) -> Result<LogFormat, String> {
        Ok(LogFormat {
            source: fmt.to_string(),
        })
    }
}
