//! Adjustments to the members' own settings: what the suite does not decide for them.

use ecrm_consent::ConsentConfig;
use ecrm_identity::IdentityConfig;
use ecrm_outbound::OutboundConfig;
use ecrm_profiles::ProfilesConfig;
use ecrm_segmentation::SegmentationConfig;

type Adjust<C> = Box<dyn Fn(&mut C) + Send + Sync>;

/// Changes to each member's settings, made after the suite has filled in its master key and
/// its peers' addresses and before the member is built: quiet hours, intervals, exchange rates
/// and the like, which otherwise keep each service's defaults.
///
/// ```
/// # use ecrm_suite::MemberSettings;
/// let settings = MemberSettings::default()
///     .outbound(|config| config.quiet_hours = "none".to_owned())
///     .consent(|config| config.task_interval = std::time::Duration::from_millis(200));
/// ```
#[derive(Default)]
pub struct MemberSettings {
    identity: Vec<Adjust<IdentityConfig>>,
    profiles: Vec<Adjust<ProfilesConfig>>,
    consent: Vec<Adjust<ConsentConfig>>,
    segmentation: Vec<Adjust<SegmentationConfig>>,
    outbound: Vec<Adjust<OutboundConfig>>,
}

impl MemberSettings {
    #[must_use]
    pub fn identity(
        mut self,
        adjust: impl Fn(&mut IdentityConfig) + Send + Sync + 'static,
    ) -> Self {
        self.identity.push(Box::new(adjust));
        self
    }

    #[must_use]
    pub fn profiles(
        mut self,
        adjust: impl Fn(&mut ProfilesConfig) + Send + Sync + 'static,
    ) -> Self {
        self.profiles.push(Box::new(adjust));
        self
    }

    #[must_use]
    pub fn consent(mut self, adjust: impl Fn(&mut ConsentConfig) + Send + Sync + 'static) -> Self {
        self.consent.push(Box::new(adjust));
        self
    }

    #[must_use]
    pub fn segmentation(
        mut self,
        adjust: impl Fn(&mut SegmentationConfig) + Send + Sync + 'static,
    ) -> Self {
        self.segmentation.push(Box::new(adjust));
        self
    }

    #[must_use]
    pub fn outbound(
        mut self,
        adjust: impl Fn(&mut OutboundConfig) + Send + Sync + 'static,
    ) -> Self {
        self.outbound.push(Box::new(adjust));
        self
    }

    pub(crate) fn apply_identity(&self, config: &mut IdentityConfig) {
        self.identity.iter().for_each(|adjust| adjust(config));
    }

    pub(crate) fn apply_profiles(&self, config: &mut ProfilesConfig) {
        self.profiles.iter().for_each(|adjust| adjust(config));
    }

    pub(crate) fn apply_consent(&self, config: &mut ConsentConfig) {
        self.consent.iter().for_each(|adjust| adjust(config));
    }

    pub(crate) fn apply_segmentation(&self, config: &mut SegmentationConfig) {
        self.segmentation.iter().for_each(|adjust| adjust(config));
    }

    pub(crate) fn apply_outbound(&self, config: &mut OutboundConfig) {
        self.outbound.iter().for_each(|adjust| adjust(config));
    }
}

impl std::fmt::Debug for MemberSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberSettings")
            .field("identity", &self.identity.len())
            .field("profiles", &self.profiles.len())
            .field("consent", &self.consent.len())
            .field("segmentation", &self.segmentation.len())
            .field("outbound", &self.outbound.len())
            .finish()
    }
}
